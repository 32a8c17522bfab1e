"""`marketlab course autograde`: every submission, in parallel sandboxed kernels, into one gradebook."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import nbformat
from tqdm.auto import tqdm

from . import grading
from .grading import Job, Limits
from .layout import Course, CourseError
from .records import failed_record, write_record

SLOW_FIRST = ("02-workflow",)  # longest jobs first keeps every worker busy to the end


def default_workers() -> int:
    """Grading mostly waits on kernels, so two jobs per core keep the machine busy."""
    return max(2, 2 * (os.cpu_count() or 1))


def autograde(course: Course, *, labs: list[str] | None = None, students: list[str] | None = None,
              workers: int | None = None, limits: Limits | None = None, force: bool = False,
              backend: str = "scripted", progress: bool = True,
              on_record: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Grade every collected submission (or some); returns the grading records.

    Submissions graded before and unchanged since are skipped unless `force`.
    """
    limits = limits or Limits()
    unknown = set(labs or []) - set(course.labs())
    if unknown:
        raise CourseError(f"Unknown lab(s) {sorted(unknown)}; the course has {course.labs()}.")
    if not any((course.folder("release") / lab).is_dir() for lab in course.labs()):
        raise CourseError("No lab has been built yet. Run `marketlab course build` first.")
    submissions = [(s, lab) for s, lab in course.submissions(labs) if students is None or s in students]
    records: list[dict[str, Any]] = []
    jobs: list[Job] = []
    for student, lab in submissions:
        fingerprint = _fingerprint(course.folder("submitted") / student / lab)
        previous = course.grading_record(student, lab)
        if not force and previous and previous.get("fingerprint") == fingerprint:
            records.append(previous)
            continue
        problems = inspect_submission(course, student, lab)
        jobs.append(Job(student, lab, fingerprint, problems))

    corrupt = [job for job in jobs if any(p["kind"] == "corrupt_notebook" for p in job.problems)]
    runnable = [job for job in jobs if job not in corrupt]
    _register(course, jobs)
    for job in corrupt:
        records.append(_record_unreadable(course, job))
    runnable.sort(key=lambda job: (job.lab not in SLOW_FIRST, job.lab, job.student))
    bar = tqdm(total=len(jobs), initial=len(corrupt), desc="Autograding", unit="notebook", disable=not progress)
    for record in _run(course, runnable, workers or default_workers(), limits, backend, bar, on_record):
        records.append(record)
    bar.close()
    return sorted(records, key=lambda r: (r["student"], r["lab"]))


def inspect_submission(course: Course, student: str, lab: str) -> list[dict[str, Any]]:
    """Structural problems found before running anything: damaged file, deleted, moved or edited check cells."""
    problems: list[dict[str, Any]] = []
    folder = course.folder("submitted") / student / lab
    for source in course.notebooks(lab):
        path = folder / source.name
        if not path.exists():
            problems.append({"kind": "missing_cells", "cell": None,
                             "detail": f"{source.name} was not submitted, so its checks score 0."})
            continue
        try:
            submitted = nbformat.read(path, as_version=4)
        except Exception as exc:  # noqa: BLE001 - any parse failure means the same thing to the learner
            problems.append({"kind": "corrupt_notebook", "cell": None,
                             "detail": f"{source.name} is damaged and cannot be opened ({type(exc).__name__}). "
                                       "It may have been cut off while saving: re-download the lab, copy your "
                                       "answers in, save and submit again."})
            continue
        release = course.folder("release") / lab / source.name
        if release.exists():
            problems += _compare_tests(nbformat.read(release, as_version=4), submitted)
    return problems


def _compare_tests(release: Any, submitted: Any) -> list[dict[str, Any]]:
    """Deleted, reordered or edited check cells, comparing with the released student version."""
    def tests(nb: Any) -> list[tuple[str, str]]:
        found = []
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("grade") and not meta.get("solution") and meta.get("grade_id"):
                found.append((meta["grade_id"], _without_hidden_tests(cell.source)))
        return found

    original, theirs = tests(release), dict(tests(submitted))
    problems: list[dict[str, Any]] = []
    missing = [gid for gid, _ in original if gid not in theirs]
    if missing:
        problems.append({"kind": "missing_cells", "cell": missing[0],
                         "detail": f"Check cell(s) {', '.join(missing)} were deleted, so they score 0. Re-download "
                                   "the lab, copy your answers in and submit again."})
    edited = [gid for gid, source in original if gid in theirs and theirs[gid].strip() != source.strip()]
    if edited:
        problems.append({"kind": "edited_tests", "cell": edited[0],
                         "detail": f"Check cell(s) {', '.join(edited)} were edited; the original checks were "
                                   "run instead, so the edit changed nothing."})
    released, kept = _graded_ids(release), _graded_ids(submitted)
    if [gid for gid in kept if gid in released] != [gid for gid in released if gid in kept]:
        problems.append({"kind": "reordered_cells", "cell": None,
                         "detail": "Answer or check cells are not in their original order; each cell ran where "
                                   "it now stands, which can make checks fail. Move them back."})
    return problems


def _graded_ids(nb: Any) -> list[str]:
    """grade ids of every nbgrader answer and check cell, in notebook order."""
    return [cell.metadata["nbgrader"]["grade_id"] for cell in nb.cells
            if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            and (cell.metadata["nbgrader"].get("grade") or cell.metadata["nbgrader"].get("solution"))]


def _without_hidden_tests(source: str) -> str:
    """A test cell as learners see it (the instructor's own copy still has its hidden part)."""
    return re.sub(r"\n?[ \t]*### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS[ \t]*", "", source, flags=re.S).strip()


def _fingerprint(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:20]


def _register(course: Course, jobs: list[Job]) -> None:
    """Create every student once up front, so parallel workers never race to create the same one."""
    with course.gradebook() as gradebook:
        for student in sorted({job.student for job in jobs}):
            gradebook.update_or_create_student(student)


def _record_unreadable(course: Course, job: Job) -> dict[str, Any]:
    """A damaged notebook never reaches nbgrader: zero points in the gradebook, and the reason."""
    with course.gradebook() as gradebook:
        submission = gradebook.update_or_create_submission(job.lab, job.student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grade.auto_score = 0
                grade.needs_manual_grade = False
        gradebook.db.commit()
    record = failed_record(course, job.student, job.lab, job.problems, "", 0.0)
    record["fingerprint"] = job.fingerprint
    write_record(course, record)
    return record


def _run(course: Course, jobs: list[Job], workers: int, limits: Limits, backend: str, bar: Any,
         on_record: Callable[[dict[str, Any]], None] | None) -> list[dict[str, Any]]:
    """Grade jobs in a process pool; a worker that dies costs its one job, never the batch."""
    grading.prepare(course)
    done: list[dict[str, Any]] = []
    retries: dict[tuple[str, str], int] = {}
    queue = list(jobs)
    while queue:
        context = multiprocessing.get_context("spawn")
        slots = context.Queue()
        size = min(workers, len(queue))
        for slot in range(size):
            slots.put(slot)
        with ProcessPoolExecutor(size, mp_context=context, initializer=grading.init_worker,
                                 initargs=(str(course.root), slots, limits, backend)) as pool:
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
                    bar.set_postfix_str(f"{record['student']}/{record['lab']} {record['score']:g}/{record['max_score']:g}")
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


def _crashed(course: Course, job: Job, exc: BaseException) -> dict[str, Any]:
    record = failed_record(course, job.student, job.lab, job.problems, f"{type(exc).__name__}: {exc}", 0.0)
    record["fingerprint"] = job.fingerprint
    write_record(course, record)
    return record
