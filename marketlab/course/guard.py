"""The sandbox's first process: it starts the learner's command and holds two limits over everything.

    python -I -S guard.py MAX_PROCESSES MAX_MB FOLDER -- COMMAND...      (MAX_MB 0: no disk limit)

bubblewrap runs it as process 1 of the sandbox's own process namespace (`--as-pid-1`). Every
learner process is its descendant; none can signal it (the kernel shields a namespace's first
process from its own members, and as root the guard is not even the learner's user), and when it
ends the kernel ends every process in the namespace. Every 20 ms it counts the processes in the
namespace; every 200 ms it adds up the sizes of the files in the submission's writable copy
(without following links). Over either limit it kills every other process in the namespace, writes
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
    return sum(1 for name in os.listdir("/proc") if name.isdigit()) - 1  # not counting the guard


def _bytes_under(folder: str) -> tuple[int, int]:
    total, files, stack = 0, 0, [folder]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    else:
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
                        files += 1
                except OSError:
                    continue
                if files > MAX_FILES:
                    return total, files
    return total, files


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
    ended = []
    while True:
        try:
            pid, code = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended.append((pid, code))


def _stop_all(code: int, why: str) -> int:
    _kill_all()
    print(f"[marketlab] sandbox stopped: {why}", file=sys.stderr, flush=True)
    return code


def main(argv: list[str]) -> int:
    if len(argv) < 5 or argv[3] != "--":
        print("usage: guard.py MAX_PROCESSES MAX_MB FOLDER -- COMMAND...", file=sys.stderr)
        return 2
    max_processes, max_bytes, folder, command = int(argv[0]), int(argv[1]) * 1024 * 1024, argv[2], argv[4:]
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
            used, files = _bytes_under(folder)
            if used > max_bytes or files > MAX_FILES:
                return _stop_all(DISK_EXIT, f"more than {max_bytes >> 20} MB (or {MAX_FILES} files) written")
        tick += 1
        time.sleep(0.02)
    _kill_all()  # what the command left running ends with it, as under bubblewrap's own first process
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
