"""Start one grading kernel in the sandbox: the command of the `marketlab-sandbox` kernelspec.

    python -I -m marketlab.grading.kernel_launcher -f {connection_file}

It runs outside the sandbox, as the grader. It reads the job file named by $MARKETLAB_SANDBOX_JOB
(written by the grading worker), hands the connection file to the sandbox's user, and starts the
kernel under bwrap with an allowlisted environment. The kernel's own stdout and stderr come
through a pipe that keeps at most `output_kb` and throws the rest away, so a learner writing to
file descriptors 1 and 2 cannot flood the instructor's log. When this process is killed, bwrap
(started with --die-with-parent) takes every process of the sandbox with it.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import cast

JOB_ENV = "MARKETLAB_SANDBOX_JOB"


def kernelspec(python: str = sys.executable) -> dict[str, object]:
    """The kernel.json of the sandboxed grading kernel."""
    return {
        # -I: jupyter starts this, as the grader, in the submission's folder; without it a learner's
        # json.py or marketlab/ there would be imported here, outside the sandbox.
        "argv": [python, "-I", "-m", "marketlab.grading.kernel_launcher", "-f", "{connection_file}"],
        "display_name": "marketlab grading sandbox",
        "language": "python",
        "interrupt_mode": "message",  # signals would reach bwrap, not the kernel
        "metadata": {"debugger": False},
    }


def main(argv: list[str]) -> int:
    """Launch the sandboxed kernel and pass its capped output on to a log file."""
    from . import sandbox
    from .job import SandboxJob

    parent = os.getppid()
    job = SandboxJob.load(Path(os.environ[JOB_ENV]))
    # The kernel reads its connection file inside the sandbox: a copy in the grader's own folder for this
    # job (read-only inside), made new under a fresh name and changed through its descriptor only.
    original = Path(argv[argv.index("-f") + 1])
    view = job.view()
    connection = _write_connection(job.private_dir or job.runtime_dir, original.read_bytes(), view.uid)
    if job.sandboxed:
        command = sandbox.command(view, [sys.executable, "-I", "-m", "marketlab.grading.kernel", "-f", str(connection)])
        options = sandbox.spawn_options(view)
        cwd = None
    else:
        command = [sys.executable, "-I", "-m", "marketlab.grading.kernel", "-f", str(connection)]
        options = sandbox.spawn_options(view)
        cwd = str(job.workdir)
    process = subprocess.Popen(command, env=dict(view.env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, cwd=cwd, **options)

    def forward(signum: int, _frame: object) -> None:
        sandbox.stop(process)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupts travel as messages
    _stop_when_orphaned(process, parent)
    keep, kept = job.limits.output_kb * 1024, 0
    assert process.stdout is not None
    stdout = cast(io.BufferedReader, process.stdout)  # a pipe with Popen's default buffering
    with open(job.log_path, "ab") as log:
        while True:
            chunk = stdout.read1(65536)
            if not chunk:
                break
            if kept < keep:
                log.write(chunk[: keep - kept])
                log.flush()
            kept += len(chunk)
    if kept > keep:
        job.log_path.with_suffix(".cut").write_text(str(kept))
    status = process.wait()
    if status in sandbox.GUARD_EXITS:  # the sandbox's guard stopped it: say which limit, for the record
        job.log_path.with_suffix(".limit").write_text(sandbox.GUARD_EXITS[status])
    return status


def _write_connection(folder: Path, content: bytes, uid: int | None) -> Path:
    """A new file in folder (O_EXCL, O_NOFOLLOW), owned by the sandbox user when there is one, mode 0600."""
    import secrets

    path = folder / f"connection-{secrets.token_hex(8)}.json"
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(handle, content)
        if uid is not None:
            os.fchown(handle, uid, uid)
        os.fchmod(handle, 0o600)
    finally:
        os.close(handle)
    return path


def _stop_when_orphaned(process: subprocess.Popen, parent: int, every_s: float = 1.0) -> None:
    """Stop the sandbox if the grading worker that started this launcher dies (killed autograde).

    Polling the parent's pid rather than PR_SET_PDEATHSIG: jupyter may start this process from a
    helper thread, and a parent-death signal fires when that thread ends, not the worker.
    """
    import threading
    import time

    from . import sandbox

    def watch() -> None:
        while process.poll() is None:
            if os.getppid() != parent:
                sandbox.stop(process)
                os._exit(1)
            time.sleep(every_s)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
