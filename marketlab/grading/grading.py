"""Grade one submission: its own copy, its own sandbox, nbgrader's pipeline with our two steps.

Runs in a grading worker process, outside every sandbox. For each job it:

1. copies the collected submission (regular files only, see intake) into a fresh folder that
   only this job's sandbox may write, in a grader-only area;
2. writes the job file the kernel launcher reads, and a private runtime folder for sockets;
3. runs nbgrader's Autograde converter (`SandboxedAutograde`: the job's context joins the
   resources nbgrader gives every step) with `NormalizeCells` first in the sanitize pass and
   `SandboxedExecute` in place of `Execute`;
4. builds the grading record from the graders' verdicts and the gradebook, and removes the job
   folder (the sandbox is gone by then: nothing it started outlives its kernel).
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbgrader.converters import Autograde
from nbgrader.utils import capture_log, temp_attrs
from traitlets import Instance

from marketlab.course import intake
from marketlab.course.layout import Course, graders_module

from . import records
from .execute import JOB_RESOURCE, JobContext, NormalizeCells, SandboxedExecute, Verdict
from .job import SandboxJob
from .kernel_launcher import JOB_ENV, kernelspec
from .sandbox import Limits

UID_BASE = 61000  # as root, grading sandboxes run as one of these user ids, one per worker slot
UID_COUNT = 1000
KERNEL_NAME = "marketlab-sandbox"


@dataclass
class Job:
    """One submission to grade, with what the coordinator already found out about it."""

    student: str
    lab: str
    fingerprint: str
    problems: list[dict[str, Any]] = field(default_factory=list)


class SandboxedAutograde(Autograde):
    """nbgrader's Autograde converter, with one grading job's context in every notebook's resources.

    nbgrader builds the resources each preprocessor receives; the job (its sandbox, its graders, its
    clock, where verdicts and notes go) joins them there, so the steps read it from their own
    arguments and nothing about a job lives at module level.
    """

    job_context = Instance(JobContext, allow_none=True, help="The job being graded (set by `grade`, not by config).")

    def init_single_notebook_resources(self, notebook_filename: str) -> dict[str, Any]:
        resources = super().init_single_notebook_resources(notebook_filename)
        resources[JOB_RESOURCE] = self.job_context
        return resources


def autograde_submission(api: Any, job: Job, ctx: JobContext) -> dict[str, Any]:
    """`NbGraderAPI.autograde` for one submission, through the converter that carries the job."""
    with temp_attrs(api.coursedir, assignment_id=job.lab, student_id=job.student):
        app = SandboxedAutograde(coursedir=api.coursedir, parent=api, job_context=ctx)
        app.force = True
        app.create_student = True
        return capture_log(app)


def grading_dir(course: Course) -> Path:
    """Grader-only working area: kernelspec and one folder per running job."""
    return course.root / ".grading"


def prepare(course: Course) -> None:
    """Write the sandbox kernelspec and working folders (in the coordinator, once)."""
    base = grading_dir(course)
    spec = base / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(__import__("json").dumps(kernelspec(), indent=2))
    jobs = base / "jobs"
    jobs.mkdir(exist_ok=True)
    os.chmod(base, 0o711)
    os.chmod(jobs, 0o711)  # sandbox users may pass through to their own job's folders, never list or write


@contextmanager
def sweeping(course: Course) -> Iterator[None]:
    """Remove job folders (and the runtime folders their job files name) before and after a run.

    A worker's own clean-up runs in `grade`'s finally; a worker that was killed, or an autograde run
    that was, leaves its folders, kernel connection files included. Runs of one course take turns
    (the course's grading lock), so a sweep never takes the folders of another run in progress.
    """
    lock_path = grading_dir(course) / "autograde.lock"
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("Another autograde run of this course is grading; this one starts when it is done.",
                  file=sys.stderr, flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        _sweep(course)
        try:
            yield
        finally:
            _sweep(course)


def _sweep(course: Course) -> None:
    jobs = grading_dir(course) / "jobs"
    for folder in list(jobs.iterdir()) if jobs.is_dir() else []:
        try:
            job = SandboxJob.load(folder / "job.json")
        except (OSError, ValueError, KeyError, TypeError):
            job = None
        tmp = Path(_short_tmp()).resolve()
        if job is not None:
            for extra in (job.runtime_dir, job.private_dir):
                # Only our own kinds of folder, directly in the temporary folder: a job file is data.
                if extra is not None and extra.parent.resolve() == tmp and \
                        extra.name.startswith(("marketlab-run-", "marketlab-own-")):
                    shutil.rmtree(extra, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)


# This worker process's set-up, written once by the pool's initializer (the course, its slot and user id, the
# course's nbgrader config, the graders it imported). Not a job's state: that travels in nbgrader's resources.
_worker: dict[str, Any] = {}


def init_worker(course_root: str, slots: Any, limits: Limits, sandboxed: bool,
                environment: dict[str, str] | None = None, coordinator: int | None = None) -> None:
    """ProcessPool initializer: claim a slot (a user id for sandboxes when root), quiet nbgrader.

    `environment` is the coordinator's when the pool started: a worker forked from a long-lived server
    process would otherwise keep the environment that server started with. `coordinator` is the pid of
    the autograde run (by default this worker's parent), whose end ends the worker.
    """
    warnings.filterwarnings("ignore")
    if environment is not None:
        os.environ.clear()
        os.environ.update(environment)
    slot = slots.get()
    course = Course(Path(course_root))
    os.environ.update(JUPYTER_PATH=str(grading_dir(course)), MARKETLAB_BACKEND="scripted",
                      PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    _worker.update(course=course, slot=slot, limits=limits, sandboxed=sandboxed,
                   uid=_claim_uid() if os.geteuid() == 0 else None, graders={}, config=course.config())
    _exit_with_coordinator(coordinator or os.getppid())


def _exit_with_coordinator(coordinator: int, every_s: float = 1.0) -> None:
    """End this worker when the autograde run that started it is gone (killed, or its terminal closed).

    Its kernel launchers then find themselves orphaned and stop their sandboxes (kernel_launcher). The
    coordinator need not be the parent (a worker forked by a fork server is that server's child), so it
    is watched through a pidfd, which names that one process even if its pid is later reused.
    """
    import select
    import threading
    import time

    def watch() -> None:
        try:
            handle = os.pidfd_open(coordinator)
        except OSError:  # already gone, or a kernel before Linux 5.3: poll its pid instead
            handle = None
        if handle is not None:
            select.select([handle], [], [])  # readable once the process has ended
        else:
            while os.path.exists(f"/proc/{coordinator}"):
                time.sleep(every_s)
        _remove_job_folders()
        os._exit(1)

    threading.Thread(target=watch, name="coordinator-watch", daemon=True).start()


def _remove_job_folders() -> None:
    """Remove the folders of the job this worker is grading (its copy, runtime and private folders).

    Called when the coordinator is gone: the worker then exits at once, so its `finally` never runs, and the
    course's sweep only sees a job folder, never the temporary folders of a run killed for good.
    """
    folders = _worker.get("job_folders", [])
    while folders:
        shutil.rmtree(folders.pop(), ignore_errors=True)  # through descriptors, never following a link


def _claim_uid() -> int:
    """A grading user id no other worker on this machine holds (other courses and runs included)."""
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


def load_graders(course: Course, lab: str) -> dict[str, Any]:
    """GRADERS of the lab's graders file (graders/lab02.py for 02-workflow, graders/capstone.py for capstone),
    imported here, outside."""
    cached = _worker.get("graders", {}).get(lab)
    if cached is not None:
        return cached
    module_name = graders_module(lab)
    path = course.graders_dir / f"{module_name}.py"
    graders: dict[str, Any] = {}
    if path.is_file():
        name = f"marketlab_graders_{module_name}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]  # a .py path always gives a spec
        sys.modules[name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]  # and a source loader
        graders = dict(getattr(module, "GRADERS", {}))
    _worker.setdefault("graders", {})[lab] = graders
    return graders


def _cell_ids(course: Course, lab: str) -> tuple[set[str], set[str]]:
    """(every grade id of the lab's source notebooks, the ids of autograded check cells)."""
    every, tests = set(), set()
    for path in course.notebooks(lab):
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("grade_id"):
                every.add(meta["grade_id"])
                if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
                    tests.add(meta["grade_id"])
    return every, tests


def _make_job(course: Course, job: Job, limits: Limits, uid: int | None, sandboxed: bool) -> tuple[SandboxJob, Path]:
    folder = Path(tempfile.mkdtemp(prefix="job-", dir=grading_dir(course) / "jobs"))
    created = _worker.setdefault("job_folders", [])  # removed by grade(), or by the worker if autograde is killed
    created.append(folder)
    os.chmod(folder, 0o711)
    work = folder / "work"
    refused = intake.copy_tree(course.folder("submitted") / job.student / job.lab, work)
    for item in refused:
        job.problems.append({"kind": "refused_file", "cell": item.name})
    # Unix socket paths must stay under 108 bytes, whatever the course's path: sockets get a short folder of
    # their own (private: 0700, a random name made with O_EXCL), removed with the job.
    run = Path(tempfile.mkdtemp(prefix="marketlab-run-", dir=_short_tmp()))
    created.append(run)
    private = private_folder()
    created.append(private)
    if uid is not None:
        # Before any learner process exists: nothing in these folders can be a swapped-in link yet.
        for path in (work, *work.rglob("*"), run):
            os.lchown(path, uid, uid)
    sandbox_job = SandboxJob(workdir=work, lab=job.lab, runtime_dir=run, log_path=folder / "kernel.log",
                             limits=limits, uid=uid, sandboxed=sandboxed, private_dir=private)
    sandbox_job.save(folder / "job.json")
    return sandbox_job, folder


def private_folder() -> Path:
    """A new folder of the grader's for one job: mode 0711, so a sandbox user may pass through to a name
    it is given (a socket, its connection file) but never list, create, rename or remove anything there."""
    folder = Path(tempfile.mkdtemp(prefix="marketlab-own-", dir=_short_tmp()))
    opened = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.fchmod(opened, 0o711)
    finally:
        os.close(opened)
    return folder


RUNTIME_VARIABLE = "MARKETLAB_RUNTIME_DIR"  # where jobs' runtime folders go (a short path: sockets live there)


def _short_tmp() -> str:
    """A temporary folder with a short path: $MARKETLAB_RUNTIME_DIR, else /tmp where it exists."""
    chosen = os.environ.get(RUNTIME_VARIABLE, "")
    if chosen and os.path.isdir(chosen) and len(chosen) <= 40:
        return chosen
    return "/tmp" if os.path.isdir("/tmp") and os.access("/tmp", os.W_OK) else tempfile.gettempdir()


def grade(job: Job) -> dict[str, Any]:
    """Autograde one submission and write its record; never raises for a bad submission."""
    course: Course = _worker["course"]
    limits: Limits = _worker["limits"]
    started = time.monotonic()
    _remove_job_folders()  # anything a job that failed to start left behind
    sandbox_job, folder = _make_job(course, job, limits, _worker["uid"], _worker["sandboxed"])
    every, tests = _cell_ids(course, job.lab)
    ctx = JobContext(job=sandbox_job, graders=load_graders(course, job.lab), deadline=started + limits.wall_seconds,
                     source_ids=every, test_ids=tests)
    os.environ[JOB_ENV] = str(folder / "job.json")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(sandbox_job.runtime_dir)
    detail = ""
    try:
        outcome = autograde_submission(course.api(_config(course, sandbox_job)), job, ctx)
        if not outcome.get("success"):
            detail = _last_lines(outcome)
    except Exception as exc:  # noqa: BLE001 - nbgrader raises for some states instead of returning success=False
        detail = f"{type(exc).__name__}: {exc}"
    finally:
        stopped = _guard_stop(sandbox_job.log_path)
        if stopped:
            ctx.note(stopped)
        # shutil.rmtree works through directory descriptors without following links (safe as root).
        _remove_job_folders()  # the job's copy, runtime and private folders
    record = build_record(course, job, ctx, detail, round(time.monotonic() - started, 2))
    records.write(course, record)
    return record.as_dict()


def _guard_stop(log_path: Path) -> str | None:
    """Which limit the sandbox's guard stopped the kernel for ("processes", "disk"), if it did.

    The launcher writes a marker when it sees the guard's exit status; when nbgrader kills the
    launcher first, the guard's own line in the kernel's log (the grader's folder) still says it.
    A learner who prints that line only gives their own record a wrong reason, never a point.
    """
    from .guard import STOPPED

    marker = log_path.with_suffix(".limit")
    if marker.is_file() and marker.read_text() in ("processes", "disk"):
        return marker.read_text()
    try:
        with open(log_path, "rb") as log:
            log.seek(max(0, log.seek(0, 2) - 65536))
            tail = log.read().decode(errors="replace")
    except OSError:
        return None
    for kind in ("processes", "disk"):
        if f"{STOPPED} ({kind})" in tail:
            return kind
    return None


def _last_lines(outcome: dict[str, Any]) -> str:
    text = f"{outcome.get('error') or ''}\n{outcome.get('log') or ''}".strip()
    return "\n".join(text.splitlines()[-20:])


def _config(course: Course, job: SandboxJob) -> Any:
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        ClearOutput,
        DeduplicateIds,
        IgnorePattern,
        LimitOutput,
        OverwriteCells,
        OverwriteKernelspec,
        SaveAutoGrades,
    )

    config = _worker["config"].copy()
    config.Autograde.sanitize_preprocessors = [NormalizeCells, ClearOutput, DeduplicateIds, OverwriteKernelspec,
                                               OverwriteCells, CheckCellMetadata]
    config.Autograde.autograde_preprocessors = [SandboxedExecute, IgnorePattern, ClearMetadataPreprocessor,
                                                LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    config.Execute.kernel_name = KERNEL_NAME
    config.Execute.timeout = job.limits.cell_timeout
    config.Execute.interrupt_on_timeout = True
    config.Execute.raise_on_iopub_timeout = False
    config.Execute.shutdown_kernel = "immediate"
    config.Execute.startup_timeout = 180  # a loaded grading machine starts kernels slowly; never a learner's fault
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = str(job.runtime_dir / "kernel")
    return config


def build_record(course: Course, job: Job, ctx: JobContext | None, detail: str,
                 seconds: float) -> records.GradingRecord:
    """The record from the graders' verdicts (decided outside the sandbox) and the gradebook's points."""
    record = records.GradingRecord(student=job.student, lab=job.lab, fingerprint=job.fingerprint, seconds=seconds)
    points = _gradebook_points(course, job)
    verdicts: dict[str, Verdict] = ctx.verdicts if ctx else {}
    for grade_id, (notebook, score, max_score, autograded) in points.items():
        if autograded:
            verdict = verdicts.get(grade_id)
            passed = bool(verdict and verdict.passed)
            record.checks.append(records.CheckOutcome(
                grade_id=grade_id, notebook=notebook, name=verdict.check if verdict else grade_id,
                what=verdict.what if verdict else "", passed=passed,
                score=max_score if passed else 0.0, max_score=max_score,
                problems=list(verdict.problems) if verdict else [], hint=verdict.hint if verdict else "",
                reason=verdict.reason if verdict else ("not_run" if ctx else "error")))
        else:
            record.manual.append(records.ManualCell(grade_id=grade_id, notebook=notebook, score=score,
                                                    max_score=max_score))
    if ctx:
        record.learner_output = list(ctx.learner_output)
        detail = "\n".join(part for part in (detail, ctx.detail) if part)
    kinds = [dict(p) for p in job.problems] + (list(ctx.notes) if ctx else [])
    for verdict in verdicts.values():
        if verdict.reason in ("no_grader", "grader_error"):
            kinds.append({"kind": verdict.reason, "cell": verdict.grade_id})
    for item in kinds:
        problem = records.Problem(kind=str(item["kind"]) if str(item["kind"]) in records.CATALOGUE else "error",
                                  cell=(str(item["cell"])[:80] if item.get("cell") else None))
        if problem not in record.problems:
            record.problems.append(problem)
    if detail:
        record.instructor_detail = detail[-4000:]
        if not record.checks or ctx is None or not ctx.verdicts:
            record.status = "failed"
            if not any(p.kind == "error" for p in record.problems):
                record.problems.append(records.Problem(kind="error"))
    _sync_scores(course, job, record)
    return record


def _gradebook_points(course: Course, job: Job) -> dict[str, tuple[str, float | None, float, bool]]:
    from nbgrader.api import MissingEntry

    points: dict[str, tuple[str, float | None, float, bool]] = {}
    _, tests = _cell_ids(course, job.lab)
    with course.gradebook() as gradebook:
        try:
            submission = gradebook.find_submission(job.lab, job.student)
        except MissingEntry:
            return points
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                autograded = grade.name in tests
                score = grade.auto_score if autograded else grade.manual_score
                points[grade.name] = (notebook.name, None if score is None else float(score),
                                      float(grade.max_score), autograded)
    return points


def _sync_scores(course: Course, job: Job, record: records.GradingRecord) -> None:
    """The gradebook's automatic points follow the verdicts (also when nbgrader could not finish)."""
    from nbgrader.api import MissingEntry

    wanted = {c.grade_id: c.score for c in record.checks}
    with course.gradebook() as gradebook:
        try:
            submission = gradebook.find_submission(job.lab, job.student)
        except MissingEntry:
            return
        changed = False
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                if grade.name in wanted and grade.auto_score != wanted[grade.name]:
                    grade.auto_score = wanted[grade.name]
                    grade.needs_manual_grade = False
                    changed = True
        if changed:
            gradebook.db.commit()
