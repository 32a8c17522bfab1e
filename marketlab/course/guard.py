"""Inside a grading kernel: keep submitted code away from the graders, new processes and the output pipe.

An audit hook (PEP 578) watches file opens, folder listings, process creation and network
connections. Code is judged by where it was written: a cell the instructor wrote (its source
hash is in `trusted`) or a grader module may read the graders and holdout data and start
processes; a cell the learner wrote, or a file in the submission folder, may not, also when a
grader calls it. Whoever tries gets a PermissionError that says why, and the attempt is reported
to autograde, which turns it into the submission's reason.

This is the last of several fences (the kernel also runs as another user in its own network
namespace, with resource limits); an audit hook is not a security boundary on its own.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

PROCESS_EVENTS = {"subprocess.Popen", "os.system", "os.fork", "os.forkpty", "os.posix_spawn", "os.exec",
                  "os.spawn", "pty.spawn", "os.startfile"}
LISTING_EVENTS = {"os.listdir", "os.scandir", "glob.glob", "glob.glob/2", "shutil.copytree", "shutil.rmtree"}
NETWORK_EVENTS = {"socket.connect", "socket.sendto", "socket.getaddrinfo"}

_state: dict[str, Any] = {}


def cell_hash(source: str) -> str:
    """The name ipykernel gives a cell's code (without folder), so frames can be traced to cells."""
    from ipykernel.compiler import get_tmp_hash_seed, murmur2_x86

    return str(murmur2_x86(source, get_tmp_hash_seed()))


def report(kind: str, detail: str, cell: str | None = None) -> None:
    """Tell autograde about a problem (one JSON line on the report channel)."""
    fd = _state.get("report_fd")
    if fd is None:
        return
    line = json.dumps({"kind": kind, "detail": detail[:500], "cell_hash": cell}) + "\n"
    try:
        os.write(fd, line.encode())
    except OSError:
        pass


def install(app: Any, *, protected: list[Path], trusted: set[str], workdir: Path, report_fd: int | None,
            output_limit: int) -> None:
    """Start guarding this kernel process (cannot be undone: audit hooks stay for the process's life)."""
    from ipykernel.compiler import get_tmp_directory

    _state.update(
        protected=[str(p) for p in protected] + [os.path.realpath(p) for p in protected],
        trusted=set(trusted), cell_dir=get_tmp_directory() + os.sep, workdir=str(workdir) + os.sep,
        report_fd=report_fd, main=threading.main_thread(), skip=(sys.prefix, sys.base_prefix),
        writable=(str(workdir) + os.sep,),
        reported=set(),
    )
    _limit_output(app, output_limit)
    sys.addaudithook(_hook)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event == "open":
        path = args[0]
        if isinstance(path, int) or path is None:
            return
        _check_read(path, event)
        if _writes(args):
            _check_write(path)
    elif event in LISTING_EVENTS:
        if args and args[0] is not None and not isinstance(args[0], int):
            _check_read(args[0], event)
    elif event in PROCESS_EVENTS:
        learner = _learner_cell()
        if learner is not None:
            _deny("forbidden_process", f"Starting another process ({event}) is not allowed while grading.", learner)
    elif event in NETWORK_EVENTS:
        learner = _learner_cell()
        if learner is not None:
            target = args[0] if event == "socket.getaddrinfo" else args[1] if len(args) > 1 else "?"
            _deny("network", f"Network access (to {target!r}) is not allowed while grading.", learner)


def _check_read(path: Any, event: str) -> None:
    try:
        text = os.fsdecode(path)
    except TypeError:
        return
    text = os.path.abspath(text)
    if text.startswith(_state["skip"]) and not any(text.startswith(p) for p in _state["protected"]):
        return  # the Python installation itself: imports, the common case
    real = os.path.realpath(text)
    if not any(real == p or real.startswith(p + os.sep) or text.startswith(p + os.sep)
               for p in _state["protected"]):
        return
    learner, trusted = _callers()
    if trusted and learner is None and threading.current_thread() is _state["main"]:
        return
    _deny("forbidden_read", f"Reading the instructor's graders or hidden data ({Path(real).name!r}) is not allowed.",
          learner)


def _writes(args: tuple[Any, ...]) -> bool:
    mode = args[1] if len(args) > 1 else None
    flags = args[2] if len(args) > 2 else 0
    if isinstance(mode, str):
        return any(c in mode for c in "wax+")
    return bool(isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))


def _check_write(path: Any) -> None:
    try:
        real = os.path.realpath(os.fsdecode(path))
    except TypeError:
        return
    if real.startswith(_state["writable"]) or real in ("/dev/null", "/dev/stdout", "/dev/stderr"):
        return
    learner = _learner_cell()
    if learner is not None:
        _deny("write_outside", f"Writing {real!r} is not allowed: a submission may only write in its own folder.",
              learner)


def _callers() -> tuple[str | None, bool]:
    """(the innermost learner cell's hash or "file" if learner code is on the stack, whether an instructor cell is)."""
    frame = sys._getframe(1)
    learner: str | None = None
    trusted = False
    cell_dir, workdir, trusted_hashes = _state["cell_dir"], _state["workdir"], _state["trusted"]
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(cell_dir):
            digest = name[len(cell_dir):-3]
            if digest in trusted_hashes:
                trusted = True
            elif learner is None:
                learner = digest
        elif name.startswith(workdir) and learner is None:
            learner = "file:" + name[len(workdir):]
        frame = frame.f_back
    return learner, trusted


def _learner_cell() -> str | None:
    return _callers()[0]


def _deny(kind: str, message: str, cell: str | None) -> None:
    key = (kind, message)
    if key not in _state["reported"]:
        _state["reported"].add(key)
        report(kind, message, cell if cell and not cell.startswith("file:") else None)
    raise PermissionError(f"marketlab grading sandbox: {message}")


def _limit_output(app: Any, limit: int) -> None:
    """Cut a cell's printed output after `limit` characters, once, with a note."""
    from ipykernel.iostream import OutStream

    used = {"chars": 0, "cut": False}
    original = OutStream.write

    def write(self: Any, string: str) -> int | None:
        if used["cut"]:
            return len(string)
        room = limit - used["chars"]
        if len(string) > room:
            used["cut"] = True
            original(self, string[:max(room, 0)])
            original(self, f"\n[marketlab: output cut after {limit // 1024} KB]\n")
            report("huge_output", f"The cell printed more than {limit // 1024} KB; the rest was cut.",
                   _learner_cell())
            return len(string)
        used["chars"] += len(string)
        return original(self, string)

    def reset(*_: Any) -> None:
        used.update(chars=0, cut=False)

    OutStream.write = write  # type: ignore[method-assign]
    shell = getattr(app, "shell", None) or getattr(getattr(app, "kernel", None), "shell", None)
    if shell is not None:
        shell.events.register("pre_run_cell", reset)
