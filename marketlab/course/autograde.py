"""`marketlab course autograde`: every submission, in parallel sandboxed kernels, into one gradebook."""

from __future__ import annotations

import ast
import copy
import hashlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import nbformat
from nbgrader.preprocessors import ClearHiddenTests
from tqdm.auto import tqdm

from .. import environment
from ..grading import grading, preload, records, sandbox
from ..grading.grading import Job
from ..grading.sandbox import Limits
from . import intake
from .layout import Course, CourseError

SLOW_FIRST = ("02-workflow",)  # longest jobs first keeps every worker busy to the end


def default_workers() -> int:
    """Grading mostly waits on kernels, so two jobs per core keep the machine busy."""
    return max(2, 2 * (os.cpu_count() or 1))


UNRUNNABLE = ("corrupt_notebook", "deep_notebook", "not_submitted")  # never reach nbgrader


def autograde(course: Course, *, labs: list[str] | None = None, students: list[str] | None = None,
              workers: int | None = None, limits: Limits | None = None, force: bool = False,
              sandboxed: bool = True, progress: bool = True,
              on_record: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Grade every collected submission (or some) in the sandbox; returns the grading records (as dicts).

    Submissions graded before and unchanged since are skipped unless `force`. Without a working
    sandbox this refuses (SandboxUnavailable) unless `sandboxed=False` was chosen explicitly.
    """
    limits = (limits or Limits()).validated()
    if sandboxed:
        sandbox.require()
    unknown = set(labs or []) - set(course.labs())
    if unknown:
        raise CourseError(f"Unknown lab(s) {sorted(unknown)}; the course has {course.labs()}.")
    if not any((course.folder("release") / lab).is_dir() for lab in course.labs()):
        raise CourseError("No lab has been built yet. Run `marketlab course build` first.")
    submissions = [(s, lab) for s, lab in course.submissions(labs) if students is None or s in students]
    jobs: list[Job] = []
    done: list[dict[str, Any]] = []
    clear = hidden_tests_step(course)
    for student, lab in submissions:
        folder = course.folder("submitted") / student / lab
        refused = intake.scrub(folder)
        fingerprint = _fingerprint(folder)
        previous = course.grading_record(student, lab)
        if not force and previous and previous.fingerprint == fingerprint and not refused:
            done.append(previous.as_dict())
            continue
        problems = [{"kind": "refused_file", "cell": r.name} for r in refused]
        problems += inspect_submission(course, student, lab, clear)
        jobs.append(Job(student, lab, fingerprint, problems))

    unrunnable = [job for job in jobs if any(p["kind"] in UNRUNNABLE for p in job.problems)]
    runnable = [job for job in jobs if job not in unrunnable]
    _register(course, jobs)
    for job in unrunnable:
        done.append(_record_unreadable(course, job))
    runnable.sort(key=lambda job: (job.lab not in SLOW_FIRST, job.lab, job.student))
    bar = tqdm(total=len(jobs), initial=len(unrunnable), desc="Autograding", unit="notebook", disable=not progress)
    for record in _run(course, runnable, workers or default_workers(), limits, sandboxed, bar, on_record):
        done.append(record)
    bar.close()
    return sorted(done, key=lambda r: (r["student"], r["lab"]))


def hidden_tests_step(course: Course) -> ClearHiddenTests:
    """nbgrader's own step that removes hidden tests, configured from the course's nbgrader_config.py."""
    return ClearHiddenTests(config=course.config())


def inspect_submission(course: Course, student: str, lab: str,
                       clear: ClearHiddenTests | None = None) -> list[dict[str, Any]]:
    """Structural problems found before running anything: damaged file, deleted, moved or edited check cells."""
    problems: list[dict[str, Any]] = []
    folder = course.folder("submitted") / student / lab
    notebooks = course.notebooks(lab)
    if not any((folder / source.name).is_file() for source in notebooks):
        return [{"kind": "not_submitted", "cell": None}]
    for source in notebooks:
        path = folder / source.name
        if not path.is_file():
            problems.append({"kind": "not_submitted", "cell": source.name})
            continue
        try:
            submitted = nbformat.read(path, as_version=4)
        except RecursionError:  # valid JSON, nested deeper than any notebook tool writes: say so
            problems.append({"kind": "deep_notebook", "cell": source.name})
            continue
        except Exception:  # noqa: BLE001 - any parse failure means the same thing to the learner
            problems.append({"kind": "corrupt_notebook", "cell": source.name})
            continue
        release = course.folder("release") / lab / source.name
        if release.exists():
            problems += _compare_tests(nbformat.read(release, as_version=4), submitted,
                                       clear or hidden_tests_step(course))
    return problems


def _compare_tests(release: Any, submitted: Any, clear: ClearHiddenTests) -> list[dict[str, Any]]:
    """Deleted, reordered or edited check cells, comparing with the released student version."""
    def tests(nb: Any) -> list[tuple[str, str]]:
        found = []
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("grade") and not meta.get("solution") and meta.get("grade_id"):
                found.append((meta["grade_id"], _as_learners_see_it(cell, clear)))
        return found

    original = tests(release)
    theirs: dict[str, str] = {}
    for gid, source in tests(submitted):
        theirs.setdefault(gid, source)  # a pasted copy of a cell: the first one counts
    problems: list[dict[str, Any]] = []
    missing = [gid for gid, _ in original if gid not in theirs]
    if missing:
        problems.append({"kind": "missing_cells", "cell": ", ".join(missing)[:80]})
    edited = [gid for gid, source in original if gid in theirs and theirs[gid].strip() != source.strip()]
    if edited:
        problems.append({"kind": "edited_tests", "cell": ", ".join(edited)[:80]})
    released = _graded_ids(release)
    kept = list(dict.fromkeys(_graded_ids(submitted)))  # duplicates are noted by grading, not counted as moves
    if [gid for gid in kept if gid in released] != [gid for gid in released if gid in kept]:
        problems.append({"kind": "reordered_cells", "cell": None})
    return problems


def _graded_ids(nb: Any) -> list[str]:
    """grade ids of every nbgrader answer and check cell, in notebook order."""
    return [cell.metadata["nbgrader"]["grade_id"] for cell in nb.cells
            if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            and (cell.metadata["nbgrader"].get("grade") or cell.metadata["nbgrader"].get("solution"))]


def _as_learners_see_it(cell: Any, clear: ClearHiddenTests) -> str:
    """A check cell's source as learners see it: nbgrader's ClearHiddenTests on a copy of the cell (the
    instructor's own copy still has its hidden part)."""
    seen = copy.deepcopy(cell)
    try:
        clear.preprocess_cell(seen, {}, 0)
    except RuntimeError:  # a region opened twice or never closed: compared as it stands (an edit if it differs)
        return str(cell.source).strip()
    return str(seen.source).strip()


def _fingerprint(folder: Path) -> str:
    """What the submission holds, as a short hash: names as bytes (whatever their encoding) and contents."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            digest.update(os.fsencode(path.relative_to(folder)))
            digest.update(path.read_bytes())
    return digest.hexdigest()[:20]


def flagged(graded: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Every flagged submission, by problem kind: {kind label: ["student/lab", ...]}."""
    found: dict[str, list[str]] = {}
    for record in graded:
        for problem in record.get("problems", []):
            found.setdefault(records.label(problem["kind"]), []).append(f"{record['student']}/{record['lab']}")
    return {kind: sorted(set(names)) for kind, names in sorted(found.items())}


def _register(course: Course, jobs: list[Job]) -> None:
    """Create every student once up front, so parallel workers never race to create the same one."""
    with course.gradebook() as gradebook:
        for student in sorted({job.student for job in jobs}):
            gradebook.update_or_create_student(student)


def _record_unreadable(course: Course, job: Job) -> dict[str, Any]:
    """A damaged or missing notebook never reaches nbgrader: zero points in the gradebook, and the reason."""
    with course.gradebook() as gradebook:
        submission = gradebook.update_or_create_submission(job.lab, job.student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grade.auto_score = 0
                grade.needs_manual_grade = False
        gradebook.db.commit()
    record = grading.build_record(course, job, None, "", 0.0)
    if any(p["kind"] == "not_submitted" and p.get("cell") is None for p in job.problems):
        record.status = "not submitted"
    else:
        record.status = "failed"
    records.write(course, record)
    return record.as_dict()


def _run(course: Course, jobs: list[Job], workers: int, limits: Limits, sandboxed: bool, bar: Any,
         on_record: Callable[[dict[str, Any]], None] | None) -> list[dict[str, Any]]:
    """Grade jobs in a process pool; a worker that dies costs its one job, never the batch."""
    grading.prepare(course)
    with grading.sweeping(course):  # folders a killed worker (or a killed earlier run) left are removed
        return _grade_all(course, jobs, workers, limits, sandboxed, bar, on_record)


def _grade_all(course: Course, jobs: list[Job], workers: int, limits: Limits, sandboxed: bool, bar: Any,
               on_record: Callable[[dict[str, Any]], None] | None) -> list[dict[str, Any]]:
    done: list[dict[str, Any]] = []
    retries: dict[tuple[str, str], int] = {}
    queue = list(jobs)
    while queue:
        context = _pool_context(course)
        slots = context.Queue()
        size = min(workers, len(queue))
        for slot in range(size):
            slots.put(slot)
        with ProcessPoolExecutor(size, mp_context=context, initializer=grading.init_worker,
                                 initargs=(str(course.root), slots, limits, sandboxed, dict(os.environ),
                                           os.getpid())) as pool:
            pending: dict[Future[dict[str, Any]], Job] = {pool.submit(grading.grade, job): job for job in queue}
            queue = []
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    job = pending.pop(future)
                    try:
                        record = future.result()
                    except BrokenProcessPool:
                        queue.append(job)  # regraded in a fresh pool
                        continue
                    except Exception as exc:  # noqa: BLE001 - one bad job must not stop the batch
                        record = _crashed(course, job, exc)
                    done.append(record)
                    bar.update(1)
                    bar.set_postfix_str(
                        f"{record['student']}/{record['lab']} {record['score']:g}/{record['max_score']:g}")
                    if on_record:
                        on_record(record)
        if queue:
            # A worker died under these jobs (the pool cannot say whose): each gets one more try in a
            # fresh pool, then a record that says so.
            for job in queue:
                retries[job.student, job.lab] = retries.get((job.student, job.lab), 0) + 1
            gave_up = [job for job in queue if retries[job.student, job.lab] > 1]
            done += [_crashed(course, job, RuntimeError("its grading worker died twice")) for job in gave_up]
            bar.update(len(gave_up))
            queue = [job for job in queue if job not in gave_up]
            time.sleep(0.5)
    return done


def _pool_context(course: Course) -> Any:
    """Workers forked from a server process that imported the grading code once, not new interpreters.

    A new interpreter per worker ("spawn") paid about four core-seconds importing nbgrader and the
    grading code before its first job: with a few submissions per worker, more than grading a simple
    notebook costs. The server ("forkserver") is a process of its own, started before any worker (see
    _start_fork_server); it ends with this process. Each worker is given the environment of the moment
    its pool starts (grading.init_worker), not the server's.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["marketlab.grading.grading", "nbgrader.apps", "nbgrader.preprocessors",
                                    "marketlab.grading.preload"])
    _start_fork_server(course)
    return context


_FORK_SERVER = threading.Lock()


def _start_fork_server(course: Course) -> None:
    """Start the workers' fork server if it is not running (once per process, again if it died).

    Python starts the server with `-c`, which puts the current folder first on its import path: an
    instructor who runs autograde from a folder a learner can write would let a learner's `nbgrader/`
    or `pandas.py` there be imported, outside any sandbox, by the server and so by every worker.
    PYTHONSAFEPATH (Python 3.11) leaves that folder off the path. The server also reads the names of
    the modules the graders need (marketlab.grading.preload) and takes one BLAS thread: after it
    imports pandas the server holds only pyarrow's jemalloc thread, whose allocator prepares for fork.
    These variables are set only while the server starts; this process keeps its own environment.
    """
    from multiprocessing import forkserver

    extra = {preload.VARIABLE: ",".join(grader_imports(course)), "PYTHONSAFEPATH": "1", "OPENBLAS_NUM_THREADS": "1"}
    with _FORK_SERVER, environment.changed(extra):
        forkserver.ensure_running()


def grader_imports(course: Course) -> list[str]:
    """marketlab's modules that the course's graders import when they load (their top-level import
    statements, read and never run), for the fork server to load once (marketlab.grading.preload).

    Only marketlab's own modules: they load what they need (pandas included) and import cleanly on
    their own (tests/test_import_order.py). A grader's other imports are left to the worker, which
    reports a failure for that lab only. `from m import x` names both m and m.x (x may be a module).
    """
    names: list[str] = []
    for path in sorted(course.graders_dir.glob("*.py")):
        try:
            tree = ast.parse(path.read_bytes())
        except (OSError, SyntaxError, ValueError):
            continue  # the worker that loads this grader reports it
        for node in tree.body:
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return [name for name in dict.fromkeys(names) if name == "marketlab" or name.startswith("marketlab.")]


def _crashed(course: Course, job: Job, exc: BaseException) -> dict[str, Any]:
    """A job whose worker failed: zero automatic points, a reason, and the detail for the instructor."""
    try:
        record = grading.build_record(course, job, None, f"{type(exc).__name__}: {exc}", 0.0)
    except Exception:  # noqa: BLE001 - even the gradebook may be the problem: still one record, never a crash
        record = records.GradingRecord(student=job.student, lab=job.lab, fingerprint=job.fingerprint,
                                       instructor_detail=f"{type(exc).__name__}: {exc}"[:4000])
    record.status = "failed"
    if not any(p.kind == "error" for p in record.problems):
        record.problems.append(records.Problem(kind="error"))
    records.write(course, record)
    return record.as_dict()
