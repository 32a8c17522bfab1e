"""Run learner code under bubblewrap (`bwrap`): the one way grading starts a learner's process.

What the sandboxed process sees is an allowlist: the system's /usr (read-only), the Python
installation and the venv (read-only), the marketlab package and the public datasets (read-only),
its own copy of the submission (the only writable place), a private /tmp, a fresh /proc and a
minimal /dev. The course folder, the graders and holdout data, the gradebook, the exchange, other
learners and the instructor's home are simply not in its view.

Namespaces: new user, pid, network (no network at all, not even loopback), ipc, uts and mount
namespaces; a new session; --die-with-parent, so nothing outlives the process that started it.
The first process of the pid namespace is marketlab's guard (guard.py): it counts the processes
and the bytes of the writable copy and stops the whole sandbox over either limit, as root and as
an ordinary user alike (RLIMIT_NPROC counts per host user, so it only serves where each sandbox
has a user of its own).

Started as root, bwrap would map the sandbox to host root. So as root the command is two bwraps:
an outer, privileged one builds the view and the pid/net/ipc namespaces, then `setpriv` becomes a
per-slot grading user (no groups, no capabilities, no_new_privs) and an inner, unprivileged bwrap
adds the user namespace. As an ordinary user one unprivileged bwrap does all of it.

The environment is built from an allowlist (`allowed_env`), never copied from the grader's.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TypedDict

from marketlab.errors import MarketlabError

SETPRIV = "/usr/bin/setpriv"
INSIDE_HOME = "/home/learner"
SYSTEM_DIRS = ("/usr", "/etc/alternatives")
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/etc/nsswitch.conf", "/etc/mime.types")
TMP_MB = 256  # private /tmp of a sandbox (memory-backed)
CODE_SUFFIXES = (".py", ".pyc")  # of datasets/: left out of every sandbox
MERGED_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


class SandboxUnavailable(MarketlabError, RuntimeError):
    """This machine cannot start the grading sandbox."""

    headline = "❌ Grading cannot start safely on this machine."


@dataclass(frozen=True)
class Limits:
    """What one submission may use while it is graded."""

    cell_timeout: int = 60          # seconds one cell may run
    wall_seconds: int = 900         # seconds the whole submission may take, every cell and check included
    memory_mb: int = 2048           # address space per process
    cpu_seconds: int = 300          # processor time per process
    file_mb: int = 64               # largest file it may write
    open_files: int = 256
    processes: int = 128            # processes in one sandbox (its guard counts them, as root and not)
    output_kb: int = 1024           # output kept per notebook; the rest is cut
    disk_mb: int = 256              # everything the submission's copy may hold, all files together

    def validated(self) -> Limits:
        """The same limits, or a MarketlabError naming the one that is not a positive whole number."""
        for name, value in vars(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise MarketlabError(f"The grading limit {name}={value!r} is not a positive whole number.",
                                     f"Pass a number above 0, e.g. --{name.replace('_', '-')} 60.")
        return self


@dataclass(frozen=True)
class Mount:
    """One host path shown inside the sandbox."""

    source: Path
    target: str
    writable: bool = False


@dataclass(frozen=True)
class View:
    """Everything one sandboxed process sees and may do."""

    workdir: Path                      # host folder: the submission's copy
    inside: str                        # where it appears inside, and the working directory
    writable: bool = True              # False: the copy is read-only too
    mounts: tuple[Mount, ...] = ()     # extra paths (sockets folder, ...)
    env: Mapping[str, str] = field(default_factory=dict)
    limits: Limits = Limits()
    uid: int | None = None             # as root: the host user the sandbox runs as

    def with_env(self, **more: str) -> View:
        """The same view with more environment variables."""
        return replace(self, env={**self.env, **more})


def bwrap_path() -> str | None:
    """The bwrap executable, or None."""
    return shutil.which("bwrap", path=os.environ.get("PATH", "") + os.pathsep + "/usr/bin:/bin")


def unavailable_reason() -> str | None:
    """Why the sandbox cannot run here (None when it can): tries a real, tiny sandbox."""
    bwrap = bwrap_path()
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed."
    if os.geteuid() == 0 and not os.path.exists(SETPRIV):
        return f"{SETPRIV} (util-linux) is missing, so the sandbox cannot drop root."
    probe = Path(sys.prefix)
    view = View(workdir=probe, inside="/probe", writable=False, uid=_probe_uid())
    try:
        done = subprocess.run(command(view, ["/usr/bin/true"]), env=dict(view.env), capture_output=True,
                              timeout=30, **spawn_options(view))
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bwrap could not start ({exc})."
    if done.returncode != 0:
        text = (done.stderr or b"").decode(errors="replace").strip().splitlines()
        return f"bwrap could not create its namespaces ({text[-1] if text else f'exit {done.returncode}'})."
    return None


def require() -> None:
    """Raise SandboxUnavailable, with the fix, when the sandbox cannot run here."""
    reason = unavailable_reason()
    if reason:
        raise SandboxUnavailable(
            f"The grading sandbox cannot run: {reason} Learner code would run with your rights.",
            "Install bubblewrap (sudo apt-get install bubblewrap) and allow user namespaces "
            "(sysctl kernel.unprivileged_userns_clone=1 where that setting exists), or, only on a machine "
            "where you trust every submission, pass --no-sandbox.")


def _probe_uid() -> int | None:
    return 65534 if os.geteuid() == 0 else None


def allowed_env(home: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a sandboxed process: an allowlist, nothing inherited."""
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": home, "USER": "learner", "LOGNAME": "learner", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "TMPDIR": "/tmp", "MPLBACKEND": "Agg", "MPLCONFIGDIR": "/tmp/matplotlib",
        "MARKETLAB_HOME": "/tmp/marketlab", "MARKETLAB_BACKEND": "scripted", "MARKETLAB_ARTIFACTS": "/tmp/artifacts",
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        # glibc reserves 64 MB of address space per malloc arena, up to 8 per core: a kernel with a dozen
        # threads (ipykernel's own, run_batch's workers) reached the memory limit and aborted mid-lab.
        "MALLOC_ARENA_MAX": "2",
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8", "TQDM_DISABLE": "1",
        "JUPYTER_PLATFORM_DIRS": "1", "JUPYTER_CONFIG_DIR": "/tmp/jupyter", "IPYTHONDIR": "/tmp/ipython",
    }
    if "MARKETLAB_DATA" in os.environ:  # read-only data the labs load (never the graders' holdout)
        env["MARKETLAB_DATA"] = os.environ["MARKETLAB_DATA"]
    env.update(extra or {})
    return env


def readonly_sources() -> list[Path]:
    """Host paths every sandbox needs, read-only: Python, the venv, marketlab and its public data."""
    import marketlab

    package = Path(marketlab.__file__).resolve().parent
    paths = [Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), package,
             *public_data_files(package.parent / "datasets")]
    data = os.environ.get("MARKETLAB_DATA")
    if data:
        paths.append(Path(data).resolve())
    # Resolve the interpreter's links (a venv's python points into the base installation).
    paths.append(Path(sys.executable).resolve().parent)
    found: list[Path] = []
    for path in paths:
        if path.exists() and not any(path == p or path.is_relative_to(p) for p in found):
            found = [p for p in found if not p.is_relative_to(path)] + [path]
    return found


def public_data_files(folder: Path) -> list[Path]:
    """The data files of `datasets/`, never its code: the generators rebuild the graders' holdout from fixed seeds."""
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.rglob("*") if path.is_file() and not path.is_symlink()
                  and path.suffix not in CODE_SUFFIXES and "__pycache__" not in path.parts)


def dirs_for(target: str, made: set[str]) -> list[str]:
    """--dir arguments (mode 0755) for each missing ancestor of target, so the sandbox user can pass through."""
    args: list[str] = []
    parts = Path(target).parts[1:-1]
    current = ""
    for part in parts:
        current += "/" + part
        if current not in made:
            made.add(current)
            args += ["--perms", "0755", "--dir", current]
    return args


def system_args(made: set[str], dirs: Sequence[str] = SYSTEM_DIRS, files: Sequence[str] = SYSTEM_FILES) -> list[str]:
    """bwrap arguments showing the system read-only: these folders and files, and the merged-/usr links."""
    args: list[str] = []
    for directory in dirs:
        if os.path.isdir(directory):
            args += dirs_for(directory, made) + ["--ro-bind", directory, directory]
    for link in MERGED_LINKS:
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            args += ["--ro-bind", link, link]
    for name in files:
        if os.path.isfile(name):
            args += dirs_for(name, made) + ["--ro-bind", name, name]
    return args


def view_args(view: View) -> list[str]:
    """bwrap arguments that build the filesystem the sandbox sees."""
    made: set[str] = set()
    args = system_args(made)
    tmp_size = str(TMP_MB * 1024 * 1024)
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", tmp_size, "--tmpfs", "/tmp",
             "--perms", "1777", "--size", tmp_size, "--tmpfs", "/var/tmp",
             "--perms", "0755", "--dir", "/home", "--perms", "0755", "--dir", INSIDE_HOME]
    made |= {"/home", INSIDE_HOME, "/tmp"}
    for source in readonly_sources():
        args += dirs_for(str(source), made) + ["--ro-bind", str(source), str(source)]
    for mount in view.mounts:
        args += dirs_for(mount.target, made) + ["--bind" if mount.writable else "--ro-bind", str(mount.source),
                                                  mount.target]
    args += dirs_for(view.inside, made) + ["--bind" if view.writable else "--ro-bind", str(view.workdir),
                                            view.inside]
    return args + ["--chdir", view.inside]


GUARD = Path(__file__).with_name("guard.py")
GUARD_EXITS: Mapping[int, str] = MappingProxyType({113: "processes", 114: "disk"})  # guard.py's statuses -> kinds


def guard(view: View) -> list[str]:
    """The sandbox's first process (marketlab/grading/guard.py): process and disk limits for everyone in it."""
    # Every place the sandbox can write that lives on the host (not its private, size-limited /tmp):
    # the copy when it is writable, and writable mounts such as the kernel's runtime folder.
    watched = [view.inside] if view.writable else []
    watched += [mount.target for mount in view.mounts if mount.writable]
    disk_mb = view.limits.disk_mb if watched else 0  # 0: nothing it can write, nothing to watch
    return [sys.executable, "-I", "-S", str(GUARD), str(view.limits.processes), str(disk_mb),
            os.pathsep.join(watched) or view.inside, "--"]


def command(view: View, argv: Sequence[str]) -> list[str]:
    """The full command line that runs argv inside the sandbox described by view.

    The guard is process 1 of the sandbox's process namespace (--as-pid-1): as root it runs before
    the switch to the grading user, so the learner's processes cannot even signal it.
    """
    bwrap = bwrap_path() or "bwrap"
    common = ["--die-with-parent", "--new-session", "--as-pid-1"]
    if os.geteuid() == 0:
        if view.uid is None:
            raise SandboxUnavailable("As root the sandbox needs a grading user id to run as.",
                                     "This is a bug in marketlab: please report it.")
        outer = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                 *common, "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
                 "--cap-add", "CAP_SETPCAP", "--cap-add", "CAP_DAC_READ_SEARCH", *view_args(view)]
        drop = [SETPRIV, f"--reuid={view.uid}", f"--regid={view.uid}", "--clear-groups", "--inh-caps=-all",
                "--bounding-set=-all", "--no-new-privs", "--"]
        inner = [bwrap, "--unshare-user", "--disable-userns", "--die-with-parent", "--bind", "/", "/",
                 "--chdir", view.inside, "--"]
        return [*outer, "--", *guard(view), *drop, *inner, *argv]
    # --unshare-all only tries a user namespace; --disable-userns needs it asked for by name.
    return [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", *common, *view_args(view), "--",
            *guard(view), *argv]


def _set_limits(limits: Limits) -> None:
    """Runs in the child just before bwrap: limits every process of the sandbox inherits."""
    mb = 1024 * 1024
    wanted = {
        resource.RLIMIT_AS: limits.memory_mb * mb,
        resource.RLIMIT_CPU: limits.cpu_seconds,
        resource.RLIMIT_FSIZE: limits.file_mb * mb,
        resource.RLIMIT_NOFILE: limits.open_files,
        resource.RLIMIT_CORE: 0,
    }
    if os.geteuid() == 0:
        # Counted per user: only meaningful where the sandbox has a user of its own (root starts it as one).
        # A backstop well above the guard's own count (it counts per user, leftovers of the slot's previous
        # sandbox included), so that the guard's stop, with its reason, comes first.
        wanted[resource.RLIMIT_NPROC] = limits.processes * 4 + 64
    for which, value in wanted.items():
        hard = resource.getrlimit(which)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        extra = 5 if which == resource.RLIMIT_CPU else 0  # SIGXCPU first, SIGKILL if it is ignored
        resource.setrlimit(which, (value, value + extra if hard == resource.RLIM_INFINITY else hard))


def _die_with_parent() -> None:
    """PR_SET_PDEATHSIG: the child is killed when the process that started it dies."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL


class SpawnOptions(TypedDict):
    """The keyword arguments of subprocess.Popen and subprocess.run that `spawn_options` gives."""

    preexec_fn: Callable[[], None]
    close_fds: bool
    start_new_session: bool


def spawn_options(view: View) -> SpawnOptions:
    """Keyword arguments for subprocess.Popen that apply the view's limits and tie the child to its parent."""
    limits = view.limits

    def prepare() -> None:
        _die_with_parent()  # bwrap does this for what it starts; this covers bwrap itself and --no-sandbox
        _set_limits(limits)

    return {"preexec_fn": prepare, "close_fds": True, "start_new_session": True}


@dataclass(frozen=True)
class Finished:
    """How a one-shot sandboxed process ended, with its (capped) output."""

    returncode: int
    stdout: bytes
    stderr: bytes
    timed_out: bool
    output_cut: bool


def _drain(stream: object, keep: int, sink: list[bytes], cut: list[bool]) -> None:
    """Read a pipe to its end, keeping the first `keep` bytes: an endless writer cannot fill memory."""
    kept = 0
    read = stream.read  # type: ignore[attr-defined]  # any readable pipe; typed object to take both kinds
    while True:
        chunk = read(65536)
        if not chunk:
            break
        if kept < keep:
            sink.append(chunk[: keep - kept])
        kept += len(chunk)
        if kept > keep:
            cut[0] = True


def run(view: View, argv: Sequence[str], *, stdin: bytes = b"", timeout: float = 120,
        keep_bytes: int | None = None) -> Finished:
    """Run argv in the sandbox to its end (or the timeout), feeding stdin; output capped at the pipe."""
    keep = keep_bytes if keep_bytes is not None else view.limits.output_kb * 1024
    process = subprocess.Popen(command(view, argv), env=dict(view.env), stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, **spawn_options(view))
    out: list[bytes] = []
    err: list[bytes] = []
    cut = [False]
    readers = [threading.Thread(target=_drain, args=(process.stdout, keep, out, cut), daemon=True),
               threading.Thread(target=_drain, args=(process.stderr, 64 * 1024, err, [False]), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        assert process.stdin is not None
        process.stdin.write(stdin)
        process.stdin.close()
    except (BrokenPipeError, OSError):
        pass
    timed_out = False
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        stop(process)
    for reader in readers:
        reader.join(timeout=5)
    return Finished(process.returncode if process.returncode is not None else -9, b"".join(out), b"".join(err),
                    timed_out, cut[0])


def stop(process: subprocess.Popen) -> None:
    """Kill a sandbox we started: its session (bwrap and, through --die-with-parent, all inside)."""
    if process.returncode is not None:
        # Already reaped: its pid, and so its session id, may belong to another process by now.
        return
    try:
        os.killpg(process.pid, 9)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
