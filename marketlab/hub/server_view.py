"""What a learner's JupyterLab sees: a bubblewrap view of the machine, built from an allowlist.

Inside: the system (read-only), Python, the venv, marketlab and its public datasets (read-only), the
hub's student labs and learner settings (read-only), the learner's own home and nbgrader's exchange
(writable where the file permissions allow), a private /tmp. Not inside: the course, the graders
and their holdout data, the gateway's folder, other homes, the hub's state. The network stays (the
server answers the hub's proxy); the pid, ipc and uts namespaces are the learner's own.
"""

from __future__ import annotations

from pathlib import Path

from ..grading.sandbox import SYSTEM_DIRS, SYSTEM_FILES, bwrap_path, dirs_for, readonly_sources, system_args
from .settings import SETTINGS_FILE, HubError, HubSettings

# Name lookups (whoami, the terminal's prompt), loopback names and certificates for an upstream.
SERVER_FILES = SYSTEM_FILES + ("/etc/passwd", "/etc/group", "/etc/hosts", "/etc/resolv.conf", "/etc/host.conf")
SERVER_DIRS = ("/etc/ssl", "/etc/ca-certificates")
TMP_MB = 1024


def learner_view(settings: HubSettings, home: Path) -> list[str]:
    """The bwrap command prefix (ending in `--`) that runs a learner's server in its view."""
    bwrap = bwrap_path()
    if bwrap is None:
        raise HubError("bubblewrap (bwrap) is not installed, so learners' servers cannot be isolated.",
                       "Install it (apt-get install bubblewrap), or start the hub with --no-sandbox-learners "
                       "only on a machine where every learner may read every file.")
    args = [bwrap, "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--disable-userns", "--die-with-parent", "--new-session"]
    made: set[str] = set()
    args += system_args(made, SYSTEM_DIRS + SERVER_DIRS, SERVER_FILES)
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(TMP_MB * 1024 * 1024),
             "--tmpfs", "/tmp"]
    made.add("/tmp")
    for source in readonly_sources() + [settings.root / SETTINGS_FILE, settings.student, settings.learner_config]:
        args += dirs_for(str(source), made) + ["--ro-bind", str(source), str(source)]
    for writable in (settings.exchange, home):
        args += dirs_for(str(writable), made) + ["--bind", str(writable), str(writable)]
    return args + ["--chdir", str(home), "--"]
