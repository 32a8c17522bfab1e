"""Issue 21's rule, place by place: no privileged operation on a name in a folder a learner can write.

The grader (root in CI) serves the scripted model on a unix socket and writes the kernel's connection
file; a learner's process runs as a grading user. Here a process with exactly that user id swaps links
to a root-owned canary into every name it can reach, in a loop, while the grader does its work.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from marketlab.grading import grading, sandbox
from marketlab.grading.harness import Harness, serve
from marketlab.grading.job import SandboxJob
from marketlab.grading.kernel_launcher import _write_connection
from marketlab.grading.sandbox import Limits
from marketlab.llm.testing import ScriptedEndpoint

ROOT = os.geteuid() == 0
_skip_unless_root = pytest.mark.skipif(not ROOT, reason="needs root: a second user id plays the learner")


def needs_root(test: Any) -> Any:
    return pytest.mark.root(_skip_unless_root(test))


# The grading boundary: the sandbox, the learner's endpoint socket, the kernel's connection file.
pytestmark = pytest.mark.sandbox

LEARNER_UID = grading.UID_BASE + grading.UID_COUNT - 7  # a grading user id no worker slot of these tests holds
SWAPPER = textwrap.dedent("""
    import os, sys, time
    folder, canary, n = sys.argv[1], sys.argv[2], 0
    made = 0
    end = time.time() + 60
    while time.time() < end:
        try:
            names = os.listdir(folder)
        except OSError:
            names = []
        for name in names + ['model.sock', 'connection.json']:
            n += 1
            link = os.path.join(folder, f'.swap{n}')
            try:
                os.symlink(canary, link)
                made += 1
                os.rename(link, os.path.join(folder, name))
            except OSError:
                pass
        print(made, flush=True)
        time.sleep(0.0005)
""")


class _Harness(Harness):
    """Only what serve() asks of a harness: the folder for sockets."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def start(self, folder, argv):  # pragma: no cover - not used here
        raise NotImplementedError

    def stop(self, process):  # pragma: no cover - not used here
        raise NotImplementedError

    def socket_dir(self) -> Path:
        return self._folder


def _as_learner(*argv: str) -> list[str]:
    return ["/usr/bin/setpriv", f"--reuid={LEARNER_UID}", f"--regid={LEARNER_UID}", "--clear-groups", *argv]


@needs_root
def test_the_endpoint_socket_is_made_where_the_learner_can_change_nothing(tmp_path):
    canary = tmp_path / "canary.txt"
    canary.write_text("canary")
    canary.chmod(0o600)
    tmp_path.chmod(0o755)
    before = canary.stat()
    folder = grading.private_folder()
    swapper = subprocess.Popen(_as_learner(sys.executable, "-I", "-c", SWAPPER, str(folder), str(canary)),
                               stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(150):
            with serve(ScriptedEndpoint(), _Harness(folder)):
                mode = next(folder.glob("endpoint-*/model.sock")).lstat().st_mode
                assert stat.S_ISSOCK(mode) and mode & 0o002, "the learner's user can connect to the socket"
    finally:
        swapper.kill()
        out, _ = swapper.communicate()
        shutil.rmtree(folder, ignore_errors=True)
    after = canary.stat()
    assert (after.st_mode, after.st_uid) == (before.st_mode, before.st_uid) and canary.read_text() == "canary"
    assert out.split()[-1] == "0", "the learner's user could create a name in the grader's socket folder"


@needs_root
def test_a_served_socket_is_reachable_by_the_learners_user(tmp_path):
    folder = grading.private_folder()
    try:
        with serve(ScriptedEndpoint(), _Harness(folder)):
            path = str(next(folder.glob("endpoint-*/model.sock")))
            reached = subprocess.run(_as_learner(sys.executable, "-I", "-c",
                                                 "import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
                                                 "s.connect(sys.argv[1])\nprint('connected')", path),
                                     capture_output=True, text=True)
            listed = subprocess.run(_as_learner("/bin/ls", str(folder)), capture_output=True, text=True)
        assert "connected" in reached.stdout, reached.stderr
        assert listed.returncode != 0, "the learner's user may pass through the grader's folder, never list it"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_connection_file_is_new_owned_and_changed_through_its_descriptor(tmp_path):
    folder = grading.private_folder()
    try:
        uid = LEARNER_UID if ROOT else None
        first = _write_connection(folder, b'{"key": "k"}', uid)
        second = _write_connection(folder, b'{"key": "k"}', uid)
        assert first != second, "every launch writes a new name (O_EXCL), never an existing one"
        info = first.lstat()
        assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
        if ROOT:
            assert info.st_uid == LEARNER_UID
        assert stat.S_IMODE(folder.stat().st_mode) == 0o711 and folder.stat().st_uid == os.geteuid()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_graders_folder_is_read_only_inside_the_sandbox(tmp_path):
    job = SandboxJob(workdir=tmp_path / "work", lab="90-attack", runtime_dir=tmp_path / "run",
                     log_path=tmp_path / "log", limits=Limits(), uid=None, private_dir=tmp_path / "own")
    args = sandbox.view_args(job.view())
    own = str(tmp_path / "own")
    at = [i for i, arg in enumerate(args) if arg == own]
    assert at and args[at[0] - 1] == "--ro-bind", "mounted read-only: no learner process can rename in it"
    assert args[args.index(str(tmp_path / "run")) - 1] == "--bind"  # the kernel binds its own sockets there


GUARD_ATTACKS = {
    # threads take process ids of the host too
    "threads": "import threading, time\nfor _ in range(200):\n    threading.Thread(target=time.sleep, args=(30,)).start()\n"
               "print('started')",
    # nested deeper than any path the guard could walk by name
    "deep": "import os\nfor _ in range(80):\n    os.mkdir('d')\n    os.chdir('d')\nopen('big', 'wb').write(b'x' * (9 << 20))\n"
            "import time; time.sleep(2)\nprint('written')",
    # a folder closed to everyone, full of data
    "closed": "import os, time\nos.mkdir('hide')\nopen('hide/big', 'wb').write(b'x' * (9 << 20))\nos.chmod('hide', 0)\n"
              "time.sleep(2)\nprint('written')",
    # writes into the other writable place: the kernel's runtime folder on the host
    "runtime": "import os, sys, time\nopen(os.path.join(sys.argv[1], 'big'), 'wb').write(b'x' * (9 << 20))\n"
               "time.sleep(2)\nprint('written')",
    # exits with the guard's own status for 'processes', claiming a limit that never stopped it
    "claims": "import os\nos._exit(113)",
}


@pytest.mark.skipif(sandbox.unavailable_reason() is not None, reason="no grading sandbox here")
@pytest.mark.parametrize("attack", sorted(GUARD_ATTACKS))
def test_the_guard_holds_threads_deep_or_closed_folders_and_the_runtime_folder(tmp_path, attack):
    from marketlab.grading.sandbox import Mount, View, allowed_env

    work, run = tmp_path / "work", tmp_path / "run"
    for folder in (work, run):
        folder.mkdir()
        if ROOT:
            os.chown(folder, LEARNER_UID, LEARNER_UID)
        folder.chmod(0o711)
    tmp_path.chmod(0o755)
    view = View(workdir=work, inside="/home/learner/lab", mounts=(Mount(run, str(run), writable=True),),
                env=allowed_env("/home/learner/lab"), limits=Limits(processes=64, disk_mb=8),
                uid=LEARNER_UID if ROOT else None)
    done = sandbox.run(view, [sys.executable, "-I", "-c", GUARD_ATTACKS[attack], str(run)], timeout=60)
    if attack == "claims":
        assert done.returncode == 1, done  # a kernel's own 113 is not the guard's
    else:
        assert done.returncode in sandbox.GUARD_EXITS, (done.returncode, done.stderr[-500:])
        assert b"sandbox stopped" in done.stderr
    for folder in (work, run):  # clean up what a closed folder would keep from pytest's own clean-up
        for top, dirs, _ in os.walk(folder):
            for name in dirs:
                os.chmod(os.path.join(top, name), 0o755)
