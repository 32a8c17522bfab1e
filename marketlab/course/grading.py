"""Grade one submission with nbgrader's autograde, in the sandboxed kernel; runs in a worker process."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import stat
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor

from . import sandbox
from .layout import Course
from .records import build_record, failed_record, write_record

UID_BASE = 61000  # grading kernels run as one of these user ids when autograde runs as root
UID_COUNT = 1000


@dataclass
class Limits:
    """What one submission's kernel may use."""

    cell_timeout: int = 60
    memory_mb: int = 2048
    cpu_seconds: int = 300
    file_mb: int = 64
    open_files: int = 256
    processes: int = 256
    output_kb: int = 1024

    def sandbox(self) -> dict[str, int]:
        """The limits as the sandbox reads them."""
        values = asdict(self)
        values.pop("cell_timeout")
        return values


@dataclass
class Job:
    """One submission to grade, with what the coordinator already found out about it."""

    student: str
    lab: str
    fingerprint: str
    problems: list[dict[str, Any]] = field(default_factory=list)


def grading_dir(course: Course) -> Path:
    """Private working area of autograde: kernelspec, runtime sockets, report channels."""
    return course.root / ".grading"


def prepare(course: Course) -> None:
    """Write the sandbox kernelspec and working folders (in the coordinator, once)."""
    base = grading_dir(course)
    spec = base / "kernels" / sandbox.KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps(sandbox.kernelspec(), indent=2))
    for name in ("runtime", "reports"):
        (base / name).mkdir(exist_ok=True)
    # Kernels that became another user must create their unix sockets here.
    os.chmod(base / "runtime", 0o1777)
    os.chmod(base / "reports", 0o700)


_worker: dict[str, Any] = {}


def init_worker(course_root: str, slots: Any, limits: Limits, backend: str) -> None:
    """ProcessPool initializer: claim a slot (a user id for kernels), quiet nbgrader's noise."""
    warnings.filterwarnings("ignore")
    slot = slots.get()
    course = Course(Path(course_root))
    runtime = grading_dir(course) / "runtime" / f"slot{slot}"
    runtime.mkdir(exist_ok=True)
    os.chmod(runtime, 0o1777)
    os.environ.update(JUPYTER_PATH=str(grading_dir(course)), JUPYTER_RUNTIME_DIR=str(runtime),
                      MARKETLAB_BACKEND=backend, MARKETLAB_GRADERS=str(course.graders_dir),
                      PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    _worker.update(course=course, slot=slot, limits=limits,
                   uid=_claim_uid() if os.geteuid() == 0 else None,
                   trusted={}, config=course.config())


def _claim_uid() -> int:
    """A grading user id no other worker on this machine holds (other courses and runs included).

    The worker keeps the lock for its life; kill(-1) as that user then only ever reaches its own kernels.
    """
    folder = Path(tempfile.gettempdir()) / "marketlab-grading-users"
    folder.mkdir(mode=0o700, exist_ok=True)
    for uid in range(UID_BASE, UID_BASE + UID_COUNT):
        handle = open(folder / f"{uid}.lock", "w")  # noqa: SIM115 - held open on purpose
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _worker["uid_lock"] = handle
        return uid
    raise RuntimeError(f"All {UID_COUNT} grading user ids are in use; fewer parallel workers, please.")


def grade(job: Job) -> dict[str, Any]:
    """Autograde one submission and write its grading record; never raises for a bad submission."""
    course: Course = _worker["course"]
    started = time.monotonic()
    report_path = grading_dir(course) / "reports" / f"{job.student}--{job.lab}.jsonl"
    report_path.unlink(missing_ok=True)
    settings = {
        "root": str(course.folder("autograded")),
        "course": str(course.root),
        "uid": _worker["uid"],
        "report": str(report_path),
        "protected": [str(course.graders_dir), str(course.graders_dir.resolve())],
        "trusted": sorted(_trusted_hashes(course, job.lab)),
        "limits": _worker["limits"].sandbox(),
    }
    os.environ[sandbox.SETTINGS_ENV] = json.dumps(settings)
    for stale in Path(os.environ["JUPYTER_RUNTIME_DIR"]).glob("kernel-*"):
        stale.unlink()  # sockets of an earlier kernel, maybe another user's: the next one must bind here
    api = course.api(_config(course))
    try:
        outcome = api.autograde(job.lab, job.student, force=True, create=True)
    except Exception as exc:  # nbgrader raises for some states instead of returning success=False
        outcome = {"success": False, "error": f"{type(exc).__name__}: {exc}", "log": ""}
    finally:
        _reclaim(course.folder("autograded") / job.student / job.lab, _worker["uid"])
    reported = _read_reports(report_path)
    seconds = round(time.monotonic() - started, 2)
    if outcome.get("success"):
        record = build_record(course, job.student, job.lab, job.problems + reported, seconds)
    else:
        record = failed_record(course, job.student, job.lab, job.problems + reported,
                               str(outcome.get("error") or "") + "\n" + str(outcome.get("log") or ""), seconds)
    record["fingerprint"] = job.fingerprint
    write_record(course, record)
    return record


def _config(course: Course) -> Any:
    from nbgrader.converters.autograde import Autograde
    from nbgrader.preprocessors import Execute

    config = _worker["config"].copy()
    config.Execute.kernel_name = sandbox.KERNEL_NAME
    config.Execute.timeout = _worker["limits"].cell_timeout
    config.Execute.interrupt_on_timeout = True
    config.Execute.raise_on_iopub_timeout = False
    config.KernelManager.transport = "ipc"
    # Unix sockets at an absolute path: one kernel at a time per worker, so one name per worker is enough.
    config.KernelManager.ip = str(Path(os.environ["JUPYTER_RUNTIME_DIR"]) / "kernel")
    steps = list(Autograde.class_traits()["autograde_preprocessors"].default())
    steps.insert(steps.index(Execute) + 1, EndSandbox)  # nbgrader's own steps, plus ours right after running
    config.Autograde.autograde_preprocessors = steps
    return config


def _trusted_hashes(course: Course, lab: str) -> set[str]:
    """Hashes of the instructor's test cells (as nbgrader restores them before running)."""
    cached = _worker["trusted"].get(lab)
    if cached is None:
        cached = set()
        from .guard import cell_hash

        for path in course.notebooks(lab):
            for cell in nbformat.read(path, as_version=4).cells:
                meta = cell.metadata.get("nbgrader", {})
                if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
                    cached.add(cell_hash(cell.source))
        _worker["trusted"][lab] = cached
    return cached


def _read_reports(path: Path) -> list[dict[str, Any]]:
    problems = []
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    for line in lines[:200]:
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict) and isinstance(item.get("kind"), str):
            problems.append({"kind": item["kind"][:40], "detail": str(item.get("detail", ""))[:500],
                             "cell_hash": item.get("cell_hash")})
    return problems


def _reclaim(folder: Path, uid: int | None) -> None:
    """Stop everything the kernel left running, and take the submission folder back."""
    if uid is None:
        return
    pid = os.fork()
    if pid == 0:  # the child becomes the grading user for one call: kill(-1) reaches only that user's processes
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    if not folder.exists():
        return
    for path in sorted(folder.rglob("*"), reverse=True):
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode) or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            path.unlink()  # a link planted to make root write elsewhere, a fifo, a socket
        else:
            os.lchown(path, 0, 0)
    os.lchown(folder, 0, 0)


class EndSandbox(NbGraderPreprocessor):
    """Runs right after Execute: the kernel is gone; reclaim its folder before nbgrader writes in it."""

    def preprocess(self, nb: Any, resources: Any) -> tuple[Any, Any]:
        """Kill leftovers of the grading user and give the folder back to the grader."""
        folder = Path(resources.get("metadata", {}).get("path", "."))
        _reclaim(folder, _worker.get("uid"))
        return nb, resources
