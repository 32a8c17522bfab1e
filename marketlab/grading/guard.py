"""The sandbox's first process: it starts the learner's command and holds two limits over everything.

    python -I -S guard.py MAX_PROCESSES MAX_MB FOLDER[:FOLDER...] -- COMMAND...   (MAX_MB 0: no disk limit)

bubblewrap runs it as process 1 of the sandbox's own process namespace (`--as-pid-1`). Every
learner process is its descendant; none can signal or trace it (the kernel shields a namespace's first
process from its own members; it is not dumpable; as root it is not even the learner's user), and when it
ends the kernel ends every process in the namespace. Every 20 ms it counts the processes in the
namespace (threads included); every 200 ms it adds up the sizes of every file and folder in the
sandbox's writable folders (through descriptors, without following links; a folder it cannot read
counts as over the limit). Over either limit it kills every other process in the namespace, writes
one line to stderr and exits with its own status: 113 for processes, 114 for disk. Otherwise it
exits as the command did, and reaps orphans meanwhile, as a first process must.

Why not RLIMIT_NPROC: it counts per user across the whole host, so for an ordinary user it would
count the grader's own processes and other learners' sandboxes. Why not a per-file limit alone:
RLIMIT_FSIZE bounds one file; a submission wrote 720 MB in many files. Standard library only, run by
path, before site-packages: it must not import anything the submission could shadow.
"""

from __future__ import annotations

import os
import signal
import sys
import time

PROCESSES_EXIT = 113
DISK_EXIT = 114
MAX_FILES = 20000  # a copy with more files than this is over the disk limit too (the walk stays cheap)


def _processes() -> int:
    """Tasks in the namespace, threads included (each takes a process id of the host), not counting the guard."""
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                count += len(os.listdir(f"/proc/{name}/task"))
            except OSError:
                count += 1  # ended meanwhile, or not ours to read: one at least
    return count - 1


MAX_DEPTH = 64  # folders deeper than this count as over the limit (the walk keeps one descriptor per level)


def _usage(folders: list[str]) -> tuple[int, int, str]:
    """Bytes and entries (files and folders) under the folders, walked through descriptors without following
    links; a folder it cannot open or read, or one nested too deep, is reported as a reason instead."""
    total = entries = 0
    for top in folders:
        try:
            root = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue  # not there (yet): nothing written
        stack = [(root, 0)]
        try:
            problem = _walk(stack)
        finally:
            for fd, _ in stack:  # left open when the walk stopped early
                os.close(fd)
        total, entries = total + problem[0], entries + problem[1]
        if problem[2]:
            return total, entries, problem[2]
    return total, entries, ""


def _walk(stack: list[tuple[int, int]]) -> tuple[int, int, str]:
    total = entries = 0
    while stack:
        fd, depth = stack.pop()
        try:
            with os.scandir(fd) as listing:
                for entry in listing:
                    entries += 1
                    try:
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
                        if entry.is_dir(follow_symlinks=False):
                            if depth + 1 > MAX_DEPTH:
                                return total, entries, f"folders nested more than {MAX_DEPTH} deep"
                            child = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                            stack.append((child, depth + 1))
                    except FileNotFoundError:
                        continue  # removed meanwhile (a temporary file): nothing to count
                    except OSError:
                        return total, entries, "a folder grading cannot read"
                    if entries > MAX_FILES:
                        return total, entries, f"more than {MAX_FILES} files and folders"
        except OSError:
            return total, entries, "a folder grading cannot read"
        finally:
            os.close(fd)
    return total, entries, ""


def _kill_all() -> None:
    """SIGKILL every other process of the namespace until none is left (forks racing the kill included)."""
    for _ in range(100):
        try:
            os.kill(-1, signal.SIGKILL)  # from process 1: every process of the namespace but itself
        except ProcessLookupError:
            return
        _reap()
        time.sleep(0.005)


def _reap() -> list[tuple[int, int]]:
    """Wait for every ended child (orphans are ours too); their (pid, status)."""
    ended: list[tuple[int, int]] = []
    while True:
        try:
            pid, code = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended.append((pid, code))


STOPPED = "[marketlab] sandbox stopped by its guard"  # what the grader looks for in the sandbox's log


def _stop_all(code: int, why: str) -> int:
    # Said first: the grader's launcher may be killed as soon as the kernel is seen dead, before it
    # learns this exit status; the line is in the log by then.
    kind = "processes" if code == PROCESSES_EXIT else "disk"
    print(f"{STOPPED} ({kind}): {why}", file=sys.stderr, flush=True)
    _kill_all()
    return code


def main(argv: list[str]) -> int:
    if len(argv) < 5 or argv[3] != "--":
        print("usage: guard.py MAX_PROCESSES MAX_MB FOLDER -- COMMAND...", file=sys.stderr)
        return 2
    max_processes, max_bytes, command = int(argv[0]), int(argv[1]) * 1024 * 1024, argv[4:]
    folders = [folder for folder in argv[2].split(os.pathsep) if folder]
    _not_traceable()
    child = os.fork()
    if child == 0:
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # passed on to the command
        signal.signal(signum, lambda number, frame: os.kill(child, number))
    status: int | None = None
    tick = 0
    while status is None:
        for pid, code in _reap():
            if pid == child:
                status = os.waitstatus_to_exitcode(code)
        if status is not None:
            break
        if _processes() > max_processes:
            return _stop_all(PROCESSES_EXIT, f"more than {max_processes} processes")
        if max_bytes and tick % 10 == 0:
            used, _, problem = _usage(folders)
            if problem or used > max_bytes:
                return _stop_all(DISK_EXIT, problem or f"more than {max_bytes >> 20} MB written")
        tick += 1
        time.sleep(0.02)
    _kill_all()  # what the command left running ends with it, as under bubblewrap's own first process
    if status in (PROCESSES_EXIT, DISK_EXIT):
        return 1  # the command's own 113 or 114 is not one of the guard's limits: it cannot claim one
    return status if status >= 0 else 128 - status


def _not_traceable() -> None:
    """PR_SET_DUMPABLE 0: no process of the same user may ptrace (and so stop) the guard (without root the
    learner's processes share its user). Its children get the usual setting back when they exec."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE
    except (OSError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
