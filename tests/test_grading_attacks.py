"""Issue 10's attack classes against the real grading pipeline: real nbgrader, real bubblewrap.

One synthetic course (tests/support/attack_course.py), one autograde call grading every hostile
learner beside honest ones, then assertions per learner: the score the grader decided outside the
sandbox, the reason, and that nothing was read, written, leaked or left running.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest

from marketlab.course import autograde as grading
from marketlab.course import exchange
from marketlab.course.build import build
from marketlab.course.feedback import write_feedback
from marketlab.course.init import init_course
from marketlab.course.layout import Course
from marketlab.grading import grading as grading_steps
from marketlab.grading import records, sandbox
from marketlab.grading.sandbox import Limits
from support.attack_course import (CORRECT, LAB, NOTEBOOK, WRONG, hand_in, learner_notebook, make_graders,
                                   make_lab, outputs)

LIMITS = Limits(cell_timeout=5, wall_seconds=40)
HONEST = ("aa_honest", "mm_honest", "zz_honest")
SECRET_ENV = ("OPENAI_API_KEY", "DATABASE_URL", "SMTP_PASS", "PGPASSWORD")
SLEEPS = ("611", "613", "617", "619", "623")  # unusual durations: a `sleep` left running is one of ours
ROOT = os.geteuid() == 0
_skip_unless_root = pytest.mark.skipif(not ROOT, reason="needs root: grading users 61000+ and chown exist only as root")


def needs_root(test: Any) -> Any:
    return pytest.mark.root(_skip_unless_root(test))


pytestmark = [pytest.mark.nbgrader, pytest.mark.sandbox,
              pytest.mark.skipif(sandbox.unavailable_reason() is not None,
                                 reason=f"no grading sandbox here: {sandbox.unavailable_reason()}")]


def _attacks(graders: Path, course: Path, token: str, port: int, abstract: str,
             canary: str = "/nonexistent") -> dict[str, dict[str, Any]]:
    """student -> how they hand in (answer, extra cells, files). Host paths are known to the attacker."""
    secret = f"{graders}/holdout/secret.csv"
    probe = textwrap.dedent(f"""
        def _try(label, fn):
            try:
                value = fn()
                print(label, 'GOT', repr(value)[:300])
            except BaseException as exc:
                print(label, 'FAILED', type(exc).__name__)
        SECRET = {secret!r}
        """)
    hijack = textwrap.dedent(f"""
        import builtins, os
        builtins.HIJACKED = __name__
        open('/tmp/marketlab-attack-{token}-hijack', 'w').write(__name__)  # host /tmp if it ran outside
        try:
            builtins.HIJACK_READ = open('/etc/shadow').read() + open({secret!r}).read()
        except Exception as exc:
            builtins.HIJACK_READ = type(exc).__name__
        import subprocess
        subprocess.Popen(['sleep', '611'], start_new_session=True)
        """)
    return {
        # A module named like the standard library, and a marketlab/ package, beside the notebook.
        "atk_modules": dict(files={"json.py": hijack, "marketlab/__init__.py": hijack,
                                   "marketlab/checks/__init__.py": hijack, "csv.py": hijack},
                            before=["import builtins, json\nprint('HIJACK', getattr(builtins, 'HIJACKED', None), "
                                    "getattr(builtins, 'HIJACK_READ', None))"]),
        # Links (and a hard link) to /etc/shadow and the graders: made in the fixture.
        "atk_links": dict(before=[probe + "for name in ('shadow.csv', 'grader.py', 'holdout.csv', 'hard.csv', "
                                          "'holdout_dir/secret.csv'):\n    _try(name, lambda: open(name).read())"]),
        # The holdout by path, through /proc/1/root, dir fds, ctypes, subprocess, multiprocessing, threads.
        "atk_read": dict(before=[probe + textwrap.dedent("""
            import os, sys, ctypes, subprocess, threading, multiprocessing
            _try('path', lambda: open(SECRET).read())
            _try('proc1root', lambda: open('/proc/1/root' + SECRET).read())
            _try('procselfroot', lambda: open('/proc/self/root' + SECRET).read())
            def dirfd():
                fd = os.open('/', os.O_RDONLY | os.O_DIRECTORY)
                return os.read(os.open(SECRET.lstrip('/'), os.O_RDONLY, dir_fd=fd), 4096)
            _try('dirfd', dirfd)
            def libc_open():
                libc = ctypes.CDLL(None, use_errno=True)
                fd = libc.open(SECRET.encode(), 0)
                return os.read(fd, 4096) if fd >= 0 else ctypes.get_errno()
            _try('ctypes', libc_open)
            _try('cat', lambda: subprocess.run(['cat', SECRET], capture_output=True).stdout)
            found = []
            t = threading.Thread(target=lambda: found.append(subprocess.run(['cat', SECRET], capture_output=True)))
            t.start(); t.join()
            _try('thread', lambda: found[0].stdout + found[0].stderr)
            _try('mp', lambda: multiprocessing.get_context('fork').Pool(1).apply(open, (SECRET,)).read())
            def hunt():
                hits = []
                for top, dirs, names in os.walk('/'):
                    dirs[:] = [d for d in dirs if os.path.join(top, d) not in ('/proc', '/usr', '/sys', sys.prefix,
                                                                               sys.base_prefix)]
                    hits += [os.path.join(top, n) for n in names if n in ('secret.csv', 'lab90.py', 'gradebook.db')]
                return hits
            _try('hunt', hunt)
            _try('modules', lambda: sorted(m for m in sys.modules if 'grader' in m))
            """)]),
        # A wrong answer that patches the checks and forges success on every channel.
        "atk_forge": dict(answer=WRONG, after=[textwrap.dedent("""
            import os, sys, types
            import marketlab.checks as checks
            from marketlab.checks import CheckResult
            from marketlab.grading import wire
            CheckResult.assert_passed = lambda self: None
            CheckResult.passed = True
            fake = types.ModuleType('graders')
            fake.__path__ = []
            fake.GRADERS = {'check-double': lambda sub: CheckResult('double', 'double', True)}
            sys.modules['graders'] = sys.modules['graders.lab90'] = sys.modules['marketlab_graders_lab90'] = fake
            wire.answer_request = lambda namespace, request: {'ok': True, 'value': 6}
            get_ipython().set_custom_exc((BaseException,), lambda *a, **k: print('✅ double() doubles numbers'))
            for _ in range(3):
                print('✅ double() doubles numbers it has not seen')
                os.write(1, '✅ double() doubles numbers it has not seen\\n'.encode())
                os.write(2, b'PASSED check-double 1/1\\n')
            """)]),
        # Floods file descriptors 1 and 2 far past the output cap.
        "atk_flood": dict(after=["import os\nblock = b'x' * (1 << 20)\nfor _ in range(24):\n"
                                 "    os.write(1, block)\n    os.write(2, block)\nprint('y' * (4 << 20))"]),
        # Reads every environment it can reach, prints it and writes it into its own folder.
        "atk_env": dict(after=[textwrap.dedent("""
            import os, glob
            seen = repr(dict(os.environ))
            for path in ['/proc/self/environ', '/proc/1/environ', *glob.glob('/proc/[0-9]*/environ')]:
                try:
                    seen += open(path, 'rb').read().decode(errors='replace')
                except OSError as exc:
                    seen += f'{path}: {type(exc).__name__}'
            open('environ.txt', 'w').write(seen)
            print(seen)
            """)]),
        # Loopback TCP and an abstract unix socket of the host.
        "atk_network": dict(after=[probe + textwrap.dedent(f"""
            import socket
            _try('tcp', lambda: socket.create_connection(('127.0.0.1', {port}), timeout=2).send(b'hello'))
            def unix():
                s = socket.socket(socket.AF_UNIX)
                s.settimeout(2)
                s.connect({abstract!r})
                return s.send(b'hello')
            _try('unix', unix)
            """)]),
        # Writes above its folder, into host /tmp, the exchange, other learners, records, the gradebook.
        "atk_plant": dict(after=[probe + textwrap.dedent(f"""
            import os
            C = {str(course)!r}
            targets = ['../../planted-{token}.txt', '/tmp/marketlab-attack-{token}-tmp',
                       '/var/tmp/marketlab-attack-{token}-vartmp',
                       C + '/exchange/marketlab/inbound/aa_honest+{LAB}+2999-01-01 00:00:00.000000 UTC/{NOTEBOOK}',
                       C + '/submitted/aa_honest/{LAB}/{NOTEBOOK}', C + '/grading/aa_honest/{LAB}.json',
                       C + '/gradebook.db', C + '/.grading/planted-{token}']
            for target in targets:
                def plant(target=target):
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    with open(target, 'a') as f:
                        f.write('planted')
                    return 'written'
                _try(target, plant)
            open('json.py', 'w').write('raise SystemExit("planted by the previous run")')
            os.makedirs('marketlab', exist_ok=True)
            open('marketlab/__init__.py', 'w').write('raise SystemExit("planted")')
            """)]),
        # Processes that try to outlive the kernel.
        "atk_background": dict(after=[textwrap.dedent("""
            import os, subprocess, threading, time
            subprocess.Popen(['sleep', '613'], start_new_session=True)
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    os.execvp('sleep', ['sleep', '617'])
                os._exit(0)
            threading.Thread(target=lambda: subprocess.run(['sleep', '619']), daemon=True).start()
            time.sleep(0.5)
            print('started')
            """)]),
        # An endless loop; and one that ignores interrupts.
        "atk_loop": dict(after=["while True:\n    pass"]),
        "atk_loop_noint": dict(after=["import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                      "while True:\n    pass"]),
        # A pre_run_cell hook that sleeps just under the cell limit before every cell.
        "atk_hook": dict(after=["import time\nget_ipython().events.register('pre_run_cell', "
                                "lambda *a: time.sleep(4))"] + ["x = 1"] * 12),
        # The kernel ends itself.
        "atk_exit": dict(after=["import os\nos._exit(1)"]),
        # An honest submission whose record path a previous run turned into a folder.
        "atk_record_dir": dict(),
        # Issue 21: swaps links to a root-owned canary over every name it can reach in the grading's
        # temporary folders (its kernel's runtime folder, the grader's own folder) for the whole grading.
        "atk_swap": dict(after=[textwrap.dedent(f"""
            import glob, os, threading, time
            def swap():
                n, end = 0, time.time() + 30
                while time.time() < end:
                    for folder in (glob.glob('/tmp/marketlab-*') + glob.glob('/tmp/marketlab-*/*/')
                                   + glob.glob('/tmp/*/marketlab-*') + glob.glob('/tmp/*/marketlab-*/*/')):
                        try:
                            names = os.listdir(folder)
                        except OSError:
                            names = []
                        for name in names + ['connection.json', 'model.sock', 'endpoint.sock']:
                            if name.startswith('kernel'):
                                continue  # its own kernel's sockets: the attack must outlive them
                            n += 1
                            link = os.path.join(folder, f'.swap{{n}}')
                            try:
                                os.symlink({canary!r}, link)
                                os.rename(link, os.path.join(folder, name))
                            except OSError:
                                try:
                                    os.unlink(link)
                                except OSError:
                                    pass
                    time.sleep(0.001)
            threading.Thread(target=swap, daemon=True).start()
            print('swapping')
            """)]),
        # Prints 8 MB every time the check calls its function: a check's request is capped too.
        "atk_loud": dict(answer="def double(x):\n    print('z' * (8 << 20))\n    return 2 * x"),
        # Starts 200 background processes; writes 6 files of 60 MB (each under the per-file limit).
        "atk_fork": dict(after=["import subprocess\nkids = [subprocess.Popen(['sleep', '623']) for _ in range(200)]"]),
        "atk_disk": dict(after=["import time\nfor i in range(6):\n    open(f'big{i}.csv', 'wb').write(b'x' * (60 << 20))"
                                "\ntime.sleep(2)"]),
        # Odd file names beside an honest notebook (one is not UTF-8: made in the fixture).
        "atk_names": dict(files={"bell\x07.txt": "x", "new\nline.txt": "x", "rtl\u202egnp.txt": "x",
                                 ("n" * 200) + ".txt": "x"}),
        # A valid notebook whose metadata is nested deeper than a JSON reader goes (made in the fixture).
        "deep_meta": dict(),
        # A plain wrong answer: proves the grader can fail.
        "wrong": dict(answer=WRONG),
        # Copy/paste of the answer and the check cell (metadata kept).
        "dup_cells": dict(duplicate=True),
        # A lab folder with only a .json.
        "json_only": dict(notebook=False, files={"notes.json": "{}"}),
    }


def _tree_bytes(root: Path, skip: tuple[Path, ...] = ()) -> dict[Path, bytes]:
    """Every regular file under root (links not followed), except under skip."""
    found = {}
    for top, dirs, names in os.walk(root, followlinks=False):
        dirs[:] = [d for d in dirs if Path(top, d) not in skip]
        for name in names:
            path = Path(top, name)
            if path.is_file() and not path.is_symlink():
                try:
                    found[path] = path.read_bytes()
                except OSError:
                    pass
    return found


def _our_processes(lab: str = LAB) -> list[str]:
    """Processes a grading sandbox of this lab left: our odd `sleep`s, or a grading user working on it."""
    left = []
    for proc in psutil.process_iter(["pid", "uids", "cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue  # already ended; only a container without an init leaves it unreaped
            cmdline = proc.info["cmdline"] or []
            if cmdline[:1] == ["sleep"] and cmdline[1:2] and cmdline[1] in SLEEPS:
                left.append(f"{proc.pid} {' '.join(cmdline)}")
            elif ROOT and proc.info["uids"] and 61000 <= proc.info["uids"].real < 62000:
                if f"HOME=/home/learner/{lab}" in "\n".join(f"{k}={v}" for k, v in proc.environ().items()):
                    left.append(f"{proc.pid} uid {proc.info['uids'].real} {' '.join(cmdline)}")
        except (psutil.Error, OSError):
            continue
    return left


class Listener:
    """A loopback TCP socket and an abstract unix socket on the host, counting who connects."""

    def __init__(self) -> None:
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(8)
        self.port = self.tcp.getsockname()[1]
        self.abstract = f"\0marketlab-attack-{secrets.token_hex(6)}"
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind(self.abstract)
        self.unix.listen(8)
        for sock in (self.tcp, self.unix):
            sock.setblocking(False)

    def connections(self) -> int:
        count = 0
        for sock in (self.tcp, self.unix):
            while True:
                try:
                    conn, _ = sock.accept()
                except BlockingIOError:
                    break
                conn.close()
                count += 1
        return count

    def close(self) -> None:
        self.tcp.close()
        self.unix.close()


class Graded:
    """The outcome of the one big autograde run."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def record(self, student: str) -> dict[str, Any]:
        return self.records[student]

    def kinds(self, student: str) -> list[str]:
        return [p["kind"] for p in self.records[student]["problems"]]

    def printed(self, student: str) -> str:
        return outputs(self.course.folder("autograded") / student / LAB / NOTEBOOK)


def _redirected(log: Path, call: Any) -> Any:
    """Run call with this process's fd 1 and 2 (inherited by workers, launchers, kernels) going to log."""
    saved = [os.dup(1), os.dup(2)]
    with open(log, "wb") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
    try:
        return call()
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


@pytest.fixture(scope="session")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Graded:
    """Build the course, hand in every attack beside honest learners, autograde all in one call."""
    warnings.filterwarnings("ignore")
    base = tmp_path_factory.mktemp("attack")
    marker = f"HOLDOUT-MARKER-{secrets.token_hex(8)}"
    token = secrets.token_hex(6)
    graders = make_graders(base / "graders", marker)
    make_lab(base / "labs")
    course = init_course(base / "course", labs_dir=base / "labs", graders_dir=graders, timeout=LIMITS.cell_timeout)
    assert all(r.ok for r in build(course, validate=False))
    release = course.folder("release") / LAB / NOTEBOOK
    submitted = course.folder("submitted")
    listener = Listener()
    canary = base / "canary.txt"  # root's file outside every copy: its mode, owner and text must not change
    canary.write_text("canary")
    canary.chmod(0o600)
    attacks = _attacks(graders, course.root, token, listener.port, listener.abstract, str(canary))
    for student in HONEST:
        hand_in(submitted / student / LAB, learner_notebook(release))
    for student, spec in attacks.items():
        nb = None if spec.get("notebook") is False else learner_notebook(
            release, answer=spec.get("answer", CORRECT), before=spec.get("before", []),
            after=spec.get("after", []), duplicate=spec.get("duplicate", False))
        hand_in(submitted / student / LAB, nb, spec.get("files"))
    links = submitted / "atk_links" / LAB
    (links / "shadow.csv").symlink_to("/etc/shadow")
    (links / "grader.py").symlink_to(graders / "lab90.py")
    (links / "holdout.csv").symlink_to(graders / "holdout" / "secret.csv")
    (links / "holdout_dir").symlink_to(graders / "holdout")
    os.link(graders / "holdout" / "secret.csv", links / "hard.csv")
    names = submitted / "atk_names" / LAB
    os.close(os.open(os.fsencode(names) + b"/notes\xff.txt", os.O_WRONLY | os.O_CREAT, 0o644))
    deep = learner_notebook(release)
    deep.cells[0].metadata["deep"] = "DEEP"
    nested = '{"n": ' * 3000 + "{}" + "}" * 3000  # valid JSON, deeper than json's reader recurses
    (submitted / "deep_meta" / LAB).mkdir(parents=True, exist_ok=True)
    (submitted / "deep_meta" / LAB / NOTEBOOK).write_text(json.dumps(deep).replace('"DEEP"', nested))
    planted = records.record_path(course, "atk_record_dir", LAB)
    (planted / "inside").mkdir(parents=True)  # a previous run left a folder where the record goes
    before = _tree_bytes(submitted)
    canary_before = canary.stat()
    # This batch's runtime folders in a folder of its own, so other grading on the machine cannot blur the count.
    runtime = Path(tempfile.mkdtemp(prefix="mlrt-", dir="/tmp"))
    runtime.chmod(0o755)
    env = {name: f"{name.lower()}-value-{secrets.token_hex(10)}" for name in SECRET_ENV}
    log = base / "instructor.log"
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        mp.setenv(grading_steps.RUNTIME_VARIABLE, str(runtime))
        graded_records = _redirected(log, lambda: grading.autograde(course, workers=2, limits=LIMITS, force=True,
                                                                    progress=False))
        write_feedback(course)
    connections = listener.connections()
    listener.close()
    try:
        shadow = Path("/etc/shadow").read_text().splitlines()[0]
    except (OSError, IndexError):
        shadow = None
    temporary_left = sorted(p.name for p in runtime.iterdir())
    shutil.rmtree(runtime, ignore_errors=True)
    return Graded(course=course, base=base, graders=graders, marker=marker, token=token, env=env, log=log,
                  records={r["student"]: r for r in graded_records}, before=before, connections=connections,
                  shadow=shadow, left=_our_processes(), canary=canary, canary_before=canary_before,
                  temporary_left=temporary_left)


# --- every learner ---------------------------------------------------------------------------------

def test_the_batch_grades_everyone_and_honest_learners_keep_full_marks(graded: Graded) -> None:
    assert set(graded.records) == set(HONEST) | set(_attacks(Path(), Path(), "", 0, ""))
    for student in HONEST:
        record = graded.record(student)
        assert record["auto_score"] == 1.0 and record["status"] == "graded", record
        assert record["reason"] == "" and record["problems"] == []
        assert record["manual_pending"] == 1.0, "the reflection awaits hand marking, it is not a lost point"
    assert graded.record("wrong")["auto_score"] == 0.0, "the grader really fails a wrong answer"
    assert graded.record("wrong")["checks"][0]["problems"] == ["double() gave a wrong answer on a hidden case"]


def test_gradebook_matches_the_records(graded: Graded) -> None:
    with graded.course.gradebook() as gradebook:
        for student, record in graded.records.items():
            submission = gradebook.find_submission(LAB, student)
            auto = sum(g.auto_score or 0 for nb in submission.notebooks for g in nb.grades if g.name == "check-double")
            assert auto == record["auto_score"], student


def test_no_process_outlives_grading(graded: Graded) -> None:
    assert "started" in graded.printed("atk_background"), "the background processes were really started"
    assert graded.left == [], f"left running after autograde: {graded.left}"


# --- modules beside the notebook --------------------------------------------------------------------

def test_modules_beside_the_notebook_never_run_before_the_cells(graded: Graded) -> None:
    printed = graded.printed("atk_modules")
    assert "HIJACK None None" in printed, printed[:500]
    assert not list(Path("/tmp").glob(f"marketlab-attack-{graded.token}-hijack")), "a learner module ran on the host"
    assert graded.record("atk_modules")["auto_score"] == 1.0


# --- links ------------------------------------------------------------------------------------------

def test_links_are_refused_not_followed(graded: Graded) -> None:
    record = graded.record("atk_links")
    refused = {p["cell"] for p in record["problems"] if p["kind"] == "refused_file"}
    assert {"shadow.csv", "grader.py", "holdout.csv", "holdout_dir", "hard.csv"} <= refused, record["problems"]
    assert record["auto_score"] == 1.0, "refusing a file is not a penalty"
    printed = graded.printed("atk_links")
    assert "GOT" not in printed and printed.count("FAILED") == 5
    for folder in (graded.course.folder("submitted"), graded.course.folder("autograded")):
        left = [p for p in (folder / "atk_links" / LAB).rglob("*") if p.is_symlink() or p.name == "hard.csv"]
        assert left == []
    assert (graded.graders / "holdout" / "secret.csv").stat().st_nlink == 1


# --- the holdout and every secret are nowhere ---------------------------------------------------------

def _everything(graded: Graded) -> dict[Path, bytes]:
    files = _tree_bytes(graded.base, skip=(graded.graders, graded.base / "labs"))
    files[graded.log] = graded.log.read_bytes()
    return files


def test_the_holdout_is_out_of_reach(graded: Graded) -> None:
    printed = graded.printed("atk_read")
    lines = {line.split(" ", 1)[0]: line for line in printed.splitlines() if " " in line}
    for way in ("path", "proc1root", "procselfroot", "dirfd", "ctypes", "cat", "thread", "mp"):
        assert way in lines, f"the {way} attempt did not run"
        assert "x,expected" not in lines[way] and graded.marker not in lines[way], lines[way]
    assert "hunt GOT []" in printed and "modules GOT []" in printed, printed
    hits = [str(p) for p, data in _everything(graded).items() if graded.marker.encode() in data]
    assert hits == [], f"holdout marker found in {hits}"
    assert graded.record("atk_read")["auto_score"] == 1.0


def test_secrets_of_the_grader_never_reach_a_learner(graded: Graded) -> None:
    printed = graded.printed("atk_env")
    assert "MARKETLAB_BACKEND" in printed, "the spy cell ran and printed its environment"
    for name, value in graded.env.items():
        assert name not in printed
        hits = [str(p) for p, data in _everything(graded).items() if value.encode() in data]
        assert hits == [], f"{name} found in {hits}"
    if graded.shadow and len(graded.shadow) > 8:
        hits = [str(p) for p, data in _everything(graded).items() if graded.shadow.encode() in data]
        assert hits == [], f"/etc/shadow content found in {hits}"


# --- forged success and floods --------------------------------------------------------------------------

def test_forging_success_does_not_raise_a_wrong_answer(graded: Graded) -> None:
    record = graded.record("atk_forge")
    assert record["auto_score"] == 0.0, record
    assert record["checks"][0]["problems"] == ["double() gave a wrong answer on a hidden case"]
    assert all(kind in records.CATALOGUE for kind in graded.kinds("atk_forge"))
    page = (graded.course.folder("feedback") / "atk_forge" / "index.html").read_text()
    assert "PASSED check-double" not in page


def test_output_is_capped_at_the_file_descriptor(graded: Graded) -> None:
    assert "huge_output" in graded.kinds("atk_flood")
    notebook = graded.course.folder("autograded") / "atk_flood" / LAB / NOTEBOOK
    cap = LIMITS.output_kb * 1024
    assert notebook.stat().st_size < 2 * cap + 200_000, "the graded notebook keeps at most the output cap"
    assert graded.log.stat().st_size < 4 * cap, f"instructor log grew to {graded.log.stat().st_size} bytes"
    assert graded.record("atk_flood")["auto_score"] == 1.0


# --- issue 21: no root operation on a learner's name, odd names, limits, clean-up ----------------------

def test_no_file_outside_the_copy_changes_while_a_kernel_swaps_links_in(graded: Graded) -> None:
    assert "swapping" in graded.printed("atk_swap"), "the attack ran"
    after = graded.canary.stat()
    before = graded.canary_before
    assert (after.st_mode, after.st_uid, after.st_gid) == (before.st_mode, before.st_uid, before.st_gid)
    assert graded.canary.read_text() == "canary"


def test_odd_file_names_are_refused_with_a_reason_and_the_batch_finishes(graded: Graded) -> None:
    record = graded.record("atk_names")
    assert record["auto_score"] == 1.0, record
    refused = [p["cell"] for p in record["problems"] if p["kind"] == "refused_file"]
    assert len(refused) == 5, refused
    assert all(name.isprintable() and len(name) <= 120 for name in refused), refused
    assert any("\\xff" in name for name in refused), "the undecodable byte is shown escaped"
    json.dumps(record, ensure_ascii=False).encode("utf-8")  # the record is plain text throughout


def test_what_a_learners_function_prints_during_a_check_is_not_kept(graded: Graded) -> None:
    record = graded.record("atk_loud")
    assert record["auto_score"] == 1.0, record
    notebook = graded.course.folder("autograded") / "atk_loud" / LAB / NOTEBOOK
    assert notebook.stat().st_size < 2 * LIMITS.output_kb * 1024 + 200_000
    assert "huge_output" in graded.kinds("atk_loud")


def test_deep_but_valid_metadata_gets_its_own_reason(graded: Graded) -> None:
    record = graded.record("deep_meta")
    assert "deep_notebook" in graded.kinds("deep_meta") and "corrupt_notebook" not in graded.kinds("deep_meta")
    assert "nested" in records.explain("deep_notebook") and record["status"] == "failed"


def test_process_and_disk_limits_stop_a_submission_with_their_reason(graded: Graded) -> None:
    for student, kind in (("atk_fork", "processes"), ("atk_disk", "disk")):
        record = graded.record(student)
        assert kind in graded.kinds(student), record
        # Stopped within a poll of the guard (20 ms for processes, 200 ms for disk): whether the check cell
        # ran first depends on how fast the cell got there; the reason is recorded either way.
        assert kind in records.CATALOGUE and records.explain(kind)
    copies = graded.course.root / ".grading" / "jobs"
    assert not copies.exists() or list(copies.iterdir()) == [], "the 360 MB copy was removed with its job"


def test_no_runtime_folder_is_left_after_the_batch(graded: Graded) -> None:
    assert graded.temporary_left == []
    assert list((graded.course.root / ".grading" / "jobs").iterdir()) == []


# --- network and planting -----------------------------------------------------------------------------

def test_no_network_not_even_loopback(graded: Graded) -> None:
    printed = graded.printed("atk_network")
    assert "tcp FAILED" in printed and "unix FAILED" in printed, printed
    assert graded.connections == 0


def test_writes_stay_in_the_submissions_own_copy(graded: Graded) -> None:
    printed = graded.printed("atk_plant")
    for where in ("/exchange/", "/submitted/", "/grading/", "gradebook.db", "/.grading/"):
        line = next(l for l in printed.splitlines() if where in l)
        # The course is not in the sandbox's view. Where its path runs through the sandbox's own private,
        # writable /tmp (a course kept under /tmp, as here), the write lands there and vanishes with the
        # sandbox: what matters is that the real file was never touched.
        if "FAILED" not in line:
            target = Path(line.split(" GOT ")[0].strip())
            assert target.is_relative_to("/tmp") or target.is_relative_to("/var/tmp"), line
            assert not target.exists() or "written" not in target.read_text(errors="replace"), line
    assert not list(Path("/tmp").glob(f"marketlab-attack-{graded.token}*"))
    assert not list(Path("/var/tmp").glob(f"marketlab-attack-{graded.token}*"))
    assert [p for p in graded.base.rglob(f"*{graded.token}*")] == []
    inbound = graded.course.folder("exchange") / "marketlab" / "inbound"
    assert not inbound.exists() or list(inbound.iterdir()) == []
    refused = graded.course.folder("submitted") / "atk_links" / LAB / "hard.csv"  # the links were never files
    odd_names = graded.course.folder("submitted") / "atk_names"  # refused at intake, left out of the copy
    assert _tree_bytes(graded.course.folder("submitted")) == {
        p: b for p, b in graded.before.items() if p != refused and not (
            p.is_relative_to(odd_names) and p.name != NOTEBOOK)}, "collected submissions are never changed by grading"
    assert graded.record("aa_honest")["auto_score"] == 1.0


# --- limits --------------------------------------------------------------------------------------------

def test_endless_loops_and_slow_hooks_are_bounded(graded: Graded) -> None:
    assert "timeout" in graded.kinds("atk_loop")
    assert graded.record("atk_loop")["auto_score"] == 1.0, "double was defined before the loop"
    noint = graded.record("atk_loop_noint")  # ignores interrupts: the check cannot get an answer in time
    assert "timeout" in graded.kinds("atk_loop_noint") and noint["auto_score"] == 0.0, noint
    hook = graded.record("atk_hook")
    assert "time_limit" in graded.kinds("atk_hook"), hook
    assert hook["auto_score"] == 0.0 and hook["checks"][0]["reason"] == "time_limit"
    for record in (graded.record("atk_loop"), noint, hook):  # bounded, not timed: the wall limit plus shutdown
        assert record["seconds"] < LIMITS.wall_seconds + 30, record


def test_a_kernel_that_ends_itself_costs_only_its_checks(graded: Graded) -> None:
    record = graded.record("atk_exit")
    assert "kernel_died" in graded.kinds("atk_exit") and record["auto_score"] == 0.0
    assert record["checks"][0]["reason"] == "kernel_died" and record["reason"]


def test_a_planted_record_folder_is_replaced(graded: Graded) -> None:
    path = records.record_path(graded.course, "atk_record_dir", LAB)
    assert path.is_file() and graded.record("atk_record_dir")["auto_score"] == 1.0


# --- honest mistakes -------------------------------------------------------------------------------------

def test_duplicated_cells_are_graded_from_the_first_copy(graded: Graded) -> None:
    record = graded.record("dup_cells")
    assert record["auto_score"] == 1.0, record
    kinds = graded.kinds("dup_cells")
    assert "duplicate_cell" in kinds and "reordered_cells" not in kinds and "missing_cells" not in kinds
    assert record["reason"] == ""


def test_a_lab_without_a_notebook_is_not_submitted(graded: Graded) -> None:
    record = graded.record("json_only")
    assert record["status"] == "not submitted" and record["score"] == 0.0
    assert "not_submitted" in graded.kinds("json_only")


# --- re-runs ---------------------------------------------------------------------------------------------

def test_rerun_is_idempotent_and_unaffected_by_what_was_planted(graded: Graded) -> None:
    course = graded.course
    again = grading.autograde(course, workers=2, limits=LIMITS, progress=False)
    assert {r["student"]: r["graded_at"] for r in again} == {s: r["graded_at"] for s, r in graded.records.items()}
    students = ["aa_honest", "atk_plant", "atk_exit", "atk_record_dir", "atk_modules", "zz_honest"]
    regraded = grading.autograde(course, students=students, workers=2, limits=LIMITS, force=True, progress=False)
    for record in regraded:
        before = graded.record(record["student"])
        assert record["auto_score"] == before["auto_score"], record
        assert [p["kind"] for p in record["problems"]] == [p["kind"] for p in before["problems"]]
    assert "SystemExit" not in outputs(course.folder("autograded") / "atk_plant" / LAB / NOTEBOOK)
    with course.gradebook() as gradebook:
        assert len(gradebook.find_assignment(LAB).submissions) == len(graded.records)
    assert _our_processes() == []


# --- collect -----------------------------------------------------------------------------------------------

@needs_root
def test_collect_refuses_an_inbound_folder_owned_by_someone_else(graded: Graded, tmp_path: Path) -> None:
    course = init_course(tmp_path / "course", labs_dir=graded.base / "labs", graders_dir=graded.graders)
    assert all(r.ok for r in build(course, validate=False))
    exchange.release(course)
    mine = hand_in(tmp_path / "learner" / LAB, learner_notebook(course.folder("release") / LAB / NOTEBOOK))
    exchange.submit(course, "amy", mine)
    exchange.collect(course)
    kept = (course.folder("submitted") / "amy" / LAB / NOTEBOOK).read_bytes()
    inbound = course.folder("exchange") / course.course_id / "inbound"
    forged = inbound / f"amy+{LAB}+2999-01-01 00:00:00.000000 UTC"
    hand_in(forged, learner_notebook(course.folder("release") / LAB / NOTEBOOK, answer=WRONG),
            {"timestamp.txt": "2999-01-01 00:00:00.000000 UTC"})
    for path in (forged, *forged.rglob("*")):
        os.lchown(path, 61999, 61999)
    (inbound / f"bob+{LAB}+2999-01-01 00:00:00.000000 UTC").symlink_to("/etc")  # not even a folder
    exchange.collect(course)
    refused = exchange.refused_submissions(course)
    assert {"student": "amy", "lab": LAB, "why": "its owner is not the learner it names"} in refused
    assert any(r["student"] == "bob" for r in refused)
    assert (course.folder("submitted") / "amy" / LAB / NOTEBOOK).read_bytes() == kept
    assert not (course.folder("submitted") / "bob").exists()


@needs_root
def test_a_planted_folder_never_hides_a_real_submission_and_a_made_up_name_never_stops_collect(
        graded: Graded, tmp_path: Path) -> None:
    course = init_course(tmp_path / "course", labs_dir=graded.base / "labs", graders_dir=graded.graders)
    assert all(r.ok for r in build(course, validate=False))
    exchange.release(course)
    release = course.folder("release") / LAB / NOTEBOOK
    inbound = course.folder("exchange") / course.course_id / "inbound"
    exchange.submit(course, "amy", hand_in(tmp_path / "first" / LAB, learner_notebook(release, answer=WRONG)))
    # Another learner plants a "newer" submission under amy's name, and one whose name holds no time.
    forged = inbound / f"amy+{LAB}+2999-01-01 00:00:00.000000 UTC"
    hand_in(forged, learner_notebook(release, answer=WRONG), {"timestamp.txt": "2999-01-01 00:00:00.000000 UTC"})
    for path in (forged, *forged.rglob("*")):
        os.lchown(path, 61999, 61999)
    (inbound / f"carl+{LAB}+not-a-time").mkdir()
    time.sleep(1.1)
    latest = hand_in(tmp_path / "second" / LAB, learner_notebook(release))
    exchange.submit(course, "amy", latest)
    exchange.collect(course)
    assert (course.folder("submitted") / "amy" / LAB / NOTEBOOK).read_bytes() == (latest / NOTEBOOK).read_bytes()
    refused = exchange.refused_submissions(course)
    assert {"student": "amy", "lab": LAB, "why": "its owner is not the learner it names"} in refused
    assert {"student": "carl", "lab": LAB, "why": "its name holds no submission time"} in refused


# --- as an ordinary user ---------------------------------------------------------------------------------

USER_SCRIPT = """
import json, sys, warnings
warnings.filterwarnings('ignore')
from marketlab.course import autograde
from marketlab.course.layout import Course
from marketlab.grading.sandbox import Limits
from pathlib import Path
records = autograde.autograde(Course(Path(sys.argv[1])), workers=2, limits=Limits(cell_timeout=5, wall_seconds=40),
                              force=True, progress=False)
print(json.dumps({r['student']: r for r in records}))
"""


@needs_root
def test_as_an_ordinary_user() -> None:
    for tool in ("useradd", "userdel", "setfacl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is missing: cannot create a throwaway ordinary user")
    name = f"mlgr{secrets.token_hex(3)}"
    made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"useradd failed: {made.stderr.strip()}")
    import pwd

    uid = pwd.getpwnam(name).pw_uid
    base = Path(tempfile.mkdtemp(prefix="marketlab-user-attack-", dir="/var/tmp"))
    python_home = Path(sys.base_prefix).resolve()
    acl = [p for p in python_home.parents if p != Path("/") and not os.stat(p).st_mode & 0o001]
    granted: list[Path] = []
    try:
        for folder in acl:
            subprocess.run(["setfacl", "-m", f"u:{name}:x", str(folder)], check=True)
            granted.append(folder)
        marker = f"USER-MARKER-{secrets.token_hex(8)}"
        token = secrets.token_hex(6)
        graders = make_graders(base / "graders", marker)
        make_lab(base / "labs")
        course = init_course(base / "course", labs_dir=base / "labs", graders_dir=graders)
        assert all(r.ok for r in build(course, validate=False))
        release = course.folder("release") / LAB / NOTEBOOK
        hand_in(course.folder("submitted") / "honest" / LAB, learner_notebook(release))
        secret = graders / "holdout" / "secret.csv"
        hostile = textwrap.dedent(f"""
            import os, subprocess, sys
            from marketlab.checks import CheckResult
            from marketlab.grading import wire
            CheckResult.assert_passed = lambda self: None
            wire.answer_request = lambda namespace, request: {{'ok': True, 'value': 6}}
            subprocess.Popen(['sleep', '611'], start_new_session=True)
            for target in [{str(course.root / 'gradebook.db')!r}, {str(course.root / 'submitted/honest' / LAB / NOTEBOOK)!r},
                           {str(course.root) + '/exchange/marketlab/inbound/x+' + LAB + '+2999-01-01 00:00:00.000000 UTC/' + NOTEBOOK!r},
                           '/tmp/marketlab-attack-{token}', {str(base / ('planted-' + token))!r}]:
                try:
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    open(target, 'a').write('planted'.upper())  # the source itself never holds the word
                    print('WROTE', target)
                except OSError as exc:
                    print('REFUSED', type(exc).__name__)
            for path in [{str(secret)!r}, '/proc/1/root' + {str(secret)!r}, '/proc/1/environ']:
                try:
                    print('READ', open(path, 'rb').read()[:2000])
                except OSError as exc:
                    print('REFUSED', type(exc).__name__)
            print(dict(os.environ))
            """)
        hand_in(course.folder("submitted") / "hostile" / LAB, learner_notebook(release, answer=WRONG, after=[hostile]),
                {"json.py": f"open('/tmp/marketlab-attack-{token}-hijack', 'w').write('ran')\n"})
        # Issue 21: the process and disk limits hold without root too (one host user for every sandbox).
        hand_in(course.folder("submitted") / "forker" / LAB, learner_notebook(release, after=[
            "import subprocess\nkids = [subprocess.Popen(['sleep', '623']) for _ in range(200)]"]))
        hand_in(course.folder("submitted") / "writer" / LAB, learner_notebook(release, after=[
            "import time\nfor i in range(6):\n    open(f'big{i}.csv', 'wb').write(b'x' * (60 << 20))\ntime.sleep(2)"]))
        honest_before = (course.folder("submitted") / "honest" / LAB / NOTEBOOK).read_bytes()
        subprocess.run(["chown", "-R", f"{uid}:{uid}", str(base)], check=True)
        os.chmod(base, 0o755)
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(base), "LANG": "C.UTF-8",
               "MARKETLAB_HOME": str(base / "home"), "OPENAI_API_KEY": "sk-user-" + secrets.token_hex(12),
               "PGPASSWORD": "pg-" + secrets.token_hex(12)}
        done = subprocess.run([sys.executable, "-c", USER_SCRIPT, str(course.root)], user=uid, group=uid,
                              extra_groups=[], env=env, cwd=str(base), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["honest"]["auto_score"] == 1.0 and result["honest"]["problems"] == []
        assert result["hostile"]["auto_score"] == 0.0
        assert "processes" in [p["kind"] for p in result["forker"]["problems"]], result["forker"]
        assert "disk" in [p["kind"] for p in result["writer"]["problems"]], result["writer"]
        printed = outputs(course.folder("autograded") / "hostile" / LAB / NOTEBOOK)
        # Without root the sandbox's own root, /tmp and /var/tmp belong to it: writing there is allowed, and
        # vanishes. What counts is the host.
        tries = [line for line in printed.splitlines() if line.startswith(("REFUSED ", "WROTE ", "READ "))]
        assert len(tries) == 8, printed[:2000]
        assert "x,expected" not in printed and marker not in printed
        assert [p for p, data in _tree_bytes(base).items() if b"PLANTED" in data] == []
        assert (course.folder("submitted") / "honest" / LAB / NOTEBOOK).read_bytes() == honest_before
        with course.gradebook() as gradebook:
            for student in ("honest", "hostile"):
                assert gradebook.find_submission(LAB, student).score <= 1.0
        files = _tree_bytes(base, skip=(graders, base / "labs"))
        for needle in (marker, env["OPENAI_API_KEY"], env["PGPASSWORD"]):
            assert [p for p, data in files.items() if needle.encode() in data] == []
        assert not list(Path("/tmp").glob(f"marketlab-attack-{token}*"))
        assert not list(base.rglob(f"planted-{token}"))
        left = [f"{p.pid} {p.info}" for p in psutil.process_iter(["uids", "cmdline", "name", "status", "ppid"])
                if p.info["uids"] and p.info["uids"].real == uid and p.info["status"] != psutil.STATUS_ZOMBIE]
        assert left == [], f"processes of the grading user left: {left}"
        assert _our_processes() == []
    finally:
        for proc in psutil.process_iter(["uids"]):
            if proc.info["uids"] and proc.info["uids"].real == uid:
                proc.kill()  # only this test's throwaway user: nothing else runs as it
        for folder in granted:
            subprocess.run(["setfacl", "-x", f"u:{name}", str(folder)], check=False)
            listing = subprocess.run(["getfacl", "-c", "-p", str(folder)], capture_output=True, text=True).stdout
            if not any(line.startswith(("user:", "group:")) and line.split(":")[1] for line in listing.splitlines()):
                subprocess.run(["setfacl", "-b", str(folder)], check=False)  # back to the plain mode bits
        subprocess.run(["userdel", name], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_killing_autograde_stops_every_sandbox_it_started(tmp_path: Path) -> None:
    """An instructor's Ctrl-C, a closed terminal or `kill -9` mid-run leaves no learner code running."""
    import signal
    import time

    base = Path(tempfile.mkdtemp(prefix="marketlab-kill-", dir="/var/tmp"))
    short_tmp = Path(grading_steps._short_tmp())

    def runtime_folders() -> set[Path]:  # each job's runtime and private folders (a socket, a connection key)
        return {*short_tmp.glob("marketlab-run-*"), *short_tmp.glob("marketlab-own-*")}

    before = runtime_folders()
    try:
        graders = make_graders(base / "graders", "KILL-MARKER")
        make_lab(base / "labs")
        course = init_course(base / "course", labs_dir=base / "labs", graders_dir=graders, timeout=120)
        assert all(r.ok for r in build(course, validate=False))
        release = course.folder("release") / LAB / NOTEBOOK
        for student in ("slow_a", "slow_b"):
            hand_in(course.folder("submitted") / student / LAB,
                    learner_notebook(release, after=["import time\ntime.sleep(300)"]))
        mark = f"kill-test-{secrets.token_hex(6)}"  # in the environment of every process autograde starts
        coordinator = subprocess.Popen(
            [sys.executable, "-m", "marketlab", "course", "autograde", "--course", str(course.root), "--force",
             "--workers", "2", "--wall-seconds", "600"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, env={**os.environ, "MARKETLAB_TEST_MARK": mark})
        jobs = str(course.root)

        def ours() -> list[psutil.Process]:  # the sandboxes, kernels, workers and any server of the pool
            found = []
            for proc in psutil.process_iter(["pid", "cmdline", "status"]):
                try:
                    cmdline = " ".join(proc.info["cmdline"] or [])
                    if proc.pid != coordinator.pid and proc.info["status"] != psutil.STATUS_ZOMBIE and (
                            jobs in cmdline or "marketlab.grading.kernel" in cmdline and proc.ppid() == 1
                            or proc.environ().get("MARKETLAB_TEST_MARK") == mark):
                        found.append(proc)
                except (psutil.Error, OSError):
                    continue
            return found

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("marketlab.grading.kernel " in " ".join(p.cmdline())
                                                      for p in ours() if p.is_running()):
            time.sleep(0.5)
        assert ours(), "grading started sandboxed kernels"
        time.sleep(2)  # the kernels are inside the learners' sleep now
        coordinator.send_signal(signal.SIGKILL)  # the coordinator only: its workers and kernels must follow
        coordinator.wait()
        deadline = time.monotonic() + 90  # polled: orphans notice within a second; the limit is for a busy machine
        while time.monotonic() < deadline and ours():
            time.sleep(0.5)
        left = [f"{p.pid} {' '.join(p.cmdline())[:120]}" for p in ours()]
        for proc in ours():  # never leave them behind, even when the assertion fails
            proc.kill()
        assert left == [], f"left running after autograde was killed: {left}"
        # Issue 21: the workers remove their jobs' temporary folders (one holds a kernel's key) as they go.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and runtime_folders() - before:
            time.sleep(0.5)
        assert not runtime_folders() - before, f"left after autograde was killed: {runtime_folders() - before}"
    finally:
        shutil.rmtree(base, ignore_errors=True)
