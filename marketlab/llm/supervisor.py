"""Run the built-in model server as a child and write down how it ended.

    python marketlab/llm/supervisor.py --record HOME/server-ended.json -- python -m marketlab.llm.server ...

Without it nobody learns why the server vanished: it runs in a session of its own, the process that
started it has usually exited, and init reaps it silently. A server that dies on an illegal
instruction then looks exactly like one that was never started. The supervisor waits for its one
child, passes on SIGTERM, SIGINT and SIGHUP, and writes the child's pid, exit status and the time
into the record (JSON, written whole then renamed), with a line in the server's log. Readers turn
the status into words (marketlab.llm.exits). Standard library only and run by path, so that it
costs a few megabytes, not an import of marketlab.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time


def _write_record(path: str, record: dict[str, object]) -> None:
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as out:
        json.dump(record, out)
    os.replace(temporary, path)


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[0] != "--record" or argv[2] != "--":
        print("usage: supervisor.py --record FILE -- COMMAND...", file=sys.stderr)
        return 2
    record_path, command = argv[1], argv[3:]
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL)

    def forward(signum: int, frame: object) -> None:
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    returncode = child.wait()
    _write_record(record_path, {"pid": child.pid, "returncode": returncode, "ended": time.time(),
                                "token": os.environ.get("MARKETLAB_SERVER_TOKEN", "")})
    how = f"signal {-returncode}" if returncode < 0 else f"exit code {returncode}"
    print(f"[marketlab] {time.strftime('%Y-%m-%d %H:%M:%S')} the model server (pid {child.pid}) ended: {how}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
