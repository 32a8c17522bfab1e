"""The grading kernel: an IPython kernel that first fences itself in.

Started by jupyter_client through the `marketlab-sandbox` kernelspec that autograde writes:

    python -m marketlab.course.sandbox -f {connection_file}

Before it runs any submitted code it, in order: drops every secret-looking variable from its
environment; when started as root, moves into its own network namespace (no network at all, not
even loopback; the kernel talks to nbgrader over unix sockets) and mount namespace (a private
/tmp), hands its working folder to an unprivileged per-slot user and becomes that user, so it
can write nowhere else and RLIMIT_NPROC stops a fork bomb; sets resource limits (address space,
CPU seconds, file size, open files, processes); and installs `marketlab.course.guard`, which
refuses submitted code the holdout data, the graders and new processes, and cuts huge output.
Settings come from MARKETLAB_SANDBOX (JSON), set by autograde.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import resource
import stat
import sys
from pathlib import Path
from typing import Any

SETTINGS_ENV = "MARKETLAB_SANDBOX"
KERNEL_NAME = "marketlab-sandbox"
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|^PG|GRADEBOOK|^OPENAI_|^AWS_|^AZURE_")

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x1000, 0x4000, 0x40000
PR_SET_PDEATHSIG = 1


def kernelspec(python: str = sys.executable) -> dict[str, Any]:
    """The kernel.json of the sandboxed grading kernel."""
    return {
        "argv": [python, "-m", "marketlab.course.sandbox", "-f", "{connection_file}"],
        "display_name": "marketlab grading sandbox",
        "language": "python",
        # Interrupts travel as messages, so they reach the kernel whatever user it became.
        "interrupt_mode": "message",
        "metadata": {"debugger": False},
    }


def settings_from_env() -> dict[str, Any]:
    """The sandbox settings autograde passed down, removed from the environment the learner sees."""
    raw = os.environ.pop(SETTINGS_ENV, "")
    return json.loads(raw) if raw else {}


def clean_environment(home: str) -> None:
    """Remove anything that looks like a credential; point HOME at the submission folder."""
    for name in list(os.environ):
        if SECRET_NAME.search(name.upper()) and name != "MARKETLAB_BACKEND":
            del os.environ[name]
    os.makedirs(os.path.join(home, ".tmp"), exist_ok=True)
    os.environ.update(HOME=home, TMPDIR=os.path.join(home, ".tmp"), MARKETLAB_HOME=os.path.join(home, ".marketlab"),
                      MARKETLAB_ARTIFACTS=os.path.join(home, ".artifacts"), USER="grader", LOGNAME="grader", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                      MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg")


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _unshare(flags: int) -> str | None:
    """unshare(2); None on success, else why it failed."""
    if _libc().unshare(flags) != 0:
        return os.strerror(ctypes.get_errno())
    return None


def _mount_tmpfs(target: str, size: str = "256m", mode: str = "1777") -> None:
    libc = _libc()
    if os.path.isdir(target):
        if libc.mount(b"tmpfs", target.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                      f"size={size},mode={mode}".encode()) != 0:
            raise OSError(ctypes.get_errno(), f"mount tmpfs on {target}: {os.strerror(ctypes.get_errno())}")


def _reveal(paths: list[str]) -> None:
    """The grading user must reach Python, marketlab and the course even under private folders (/root, ~).

    Inside our mount namespace each closed ancestor is covered by an empty tmpfs and only the
    needed folders are bound back at their old paths: the rest of that folder stays out of sight.
    """
    libc = _libc()
    wanted = sorted({os.path.realpath(p) for p in paths if os.path.exists(p)})
    tops = [p for p in wanted if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in wanted)]
    covers: dict[str, list[str]] = {}
    for path in tops:
        closed = next((str(a) for a in reversed(Path(path).parents) if str(a) != "/"
                       and not os.stat(a).st_mode & stat.S_IXOTH), None)
        if closed is not None:
            covers.setdefault(closed, []).append(path)
    for closed, inside in covers.items():
        kept = {path: os.open(path, os.O_PATH) for path in inside}  # still reachable after the cover
        try:
            _mount_tmpfs(closed, "1m", mode="0755")
            for path, handle in kept.items():
                if os.path.isdir(f"/proc/self/fd/{handle}"):
                    os.makedirs(path, exist_ok=True)
                else:
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    open(path, "a").close()
                if libc.mount(f"/proc/self/fd/{handle}".encode(), path.encode(), None, MS_BIND | MS_REC, None) != 0:
                    raise OSError(ctypes.get_errno(), f"bind {path}: {os.strerror(ctypes.get_errno())}")
        finally:
            for handle in kept.values():
                os.close(handle)


def isolate_as_root(uid: int, workdir: Path, connection_file: Path, needed: list[str]) -> list[str]:
    """New network and mount namespaces, private temp folders, then become `uid`. Returns what could not be done."""
    notes: list[str] = []
    problem = _unshare(CLONE_NEWNS | CLONE_NEWNET)
    if problem:
        notes.append(f"network not isolated and kernel left as root ({problem})")
        return notes
    # Make our mounts private so the changes below are seen by nobody else.
    if _libc().mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        notes.append(f"no private mounts ({os.strerror(ctypes.get_errno())}); kernel left as root")
        return notes
    try:
        _reveal([sys.base_prefix, sys.prefix, *needed])
        for target in ("/tmp", "/var/tmp", "/dev/shm"):
            # A course kept under /tmp (tests do) must stay visible; then only file permissions guard it.
            if not any(Path(p).resolve().is_relative_to(target) for p in needed):
                _mount_tmpfs(target)
    except OSError as exc:
        notes.append(f"{exc}; kernel left as root")
        return notes
    for path in (workdir, *workdir.rglob("*")):
        os.lchown(path, uid, uid)
    os.chown(connection_file, uid, uid)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    return notes


def isolate_unprivileged() -> list[str]:
    """Without root: a user namespace gives a private network where the kernel allows it."""
    uid, gid = os.getuid(), os.getgid()
    problem = _unshare(CLONE_NEWUSER | CLONE_NEWNET)
    if problem:
        return [f"network not isolated: not root and no user namespaces ({problem})",
                "writes outside the submission folder are limited only by file permissions"]
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
    Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    return ["writes outside the submission folder are limited only by file permissions (not root)"]


def set_limits(limits: dict[str, int]) -> None:
    """Memory, CPU time, file size, open files and processes, as autograde configured them."""
    mb = 1024 * 1024
    wanted = {
        resource.RLIMIT_AS: limits.get("memory_mb", 2048) * mb,
        resource.RLIMIT_CPU: limits.get("cpu_seconds", 300),
        resource.RLIMIT_FSIZE: limits.get("file_mb", 64) * mb,
        resource.RLIMIT_NOFILE: limits.get("open_files", 256),
        resource.RLIMIT_CORE: 0,
    }
    if "processes" in limits:
        wanted[resource.RLIMIT_NPROC] = limits["processes"]
    for which, value in wanted.items():
        hard = resource.getrlimit(which)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        # The CPU hard limit sits a little above the soft one: SIGXCPU first, SIGKILL if it is ignored.
        resource.setrlimit(which, (value, value + 5 if which == resource.RLIMIT_CPU else value))


def main(argv: list[str]) -> None:
    """Fence the process in, then become an IPython kernel."""
    settings = settings_from_env()
    workdir = Path.cwd().resolve()
    connection_file = Path(argv[argv.index("-f") + 1]).resolve()
    allowed_root = Path(settings.get("root", "/nonexistent")).resolve()
    if settings and not workdir.is_relative_to(allowed_root):
        sys.exit(f"marketlab sandbox: refusing to grade in {workdir}, which is outside {allowed_root}")

    report = os.open(settings["report"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600) if "report" in settings else None
    clean_environment(str(workdir))
    notes: list[str] = []
    uid = settings.get("uid")
    if uid is not None and os.geteuid() == 0:
        needed = [settings.get("course", str(workdir)), str(connection_file), str(Path(__file__).parents[2]),
                  *settings.get("protected", [])]
        notes += isolate_as_root(int(uid), workdir, connection_file, needed)
    elif settings.get("isolate", True) and settings:
        notes += isolate_unprivileged()
    _libc().prctl(PR_SET_PDEATHSIG, 9)  # after setuid, which clears it: die with the grader
    limits = dict(settings.get("limits", {}))
    if uid is None or os.getuid() != int(uid):
        # RLIMIT_NPROC counts every process of the user: only safe once we are a user of our own.
        limits.pop("processes", None)
    set_limits(limits)

    from ipykernel.kernelapp import IPKernelApp

    from . import guard

    app = IPKernelApp.instance()
    app.initialize(["-f", str(connection_file), "--HistoryManager.hist_file=:memory:"])
    if settings:
        guard.install(app, protected=[Path(p) for p in settings.get("protected", [])],
                      trusted=set(settings.get("trusted", [])), workdir=workdir, report_fd=report,
                      output_limit=settings.get("limits", {}).get("output_kb", 1024) * 1024)
        for note in notes:
            guard.report("sandbox", note)
    app.start()


if __name__ == "__main__":
    main(sys.argv[1:])
