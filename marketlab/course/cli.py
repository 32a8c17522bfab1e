"""`marketlab course ...`: one command per step of the instructor's day."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from .layout import Course, CourseError


def add_commands(commands: Any) -> None:
    """Register `marketlab course` and its sub-commands on the main parser."""
    course = commands.add_parser("course", help="instructor pipeline: build, release, collect, grade, report")
    steps = course.add_subparsers(dest="step", required=True)

    def step(name: str, help: str) -> argparse.ArgumentParser:
        parser = steps.add_parser(name, help=help)
        if name != "init":
            parser.add_argument("--course", default=None, help="course folder (default: here or above)")
        return parser

    init = step("init", "create a course folder wired to the labs, graders and a gradebook")
    init.add_argument("directory")
    init.add_argument("--labs", default=None, help="folder with one sub-folder per lab (default: labs/)")
    init.add_argument("--graders", default=None, help="graders folder with holdout/ (default: graders/)")
    init.add_argument("--db", default=None,
                      help="gradebook SQLAlchemy URL (default: SQLite in the course folder); "
                           "keep passwords in PGPASSWORD or ~/.pgpass")
    init.add_argument("--timeout", type=int, default=60, help="seconds a cell may run while grading")
    init.set_defaults(func=_init)

    build = step("build", "generate and validate the student version of every lab")
    build.add_argument("labs", nargs="*")
    build.add_argument("--no-validate", action="store_true", help="skip the solution/student autograde check")
    build.set_defaults(func=_build)

    release = step("release", "publish built labs in nbgrader's exchange")
    release.add_argument("labs", nargs="*")
    release.set_defaults(func=_release)

    collect = step("collect", "collect submissions from the exchange, or from an LMS zip")
    collect.add_argument("labs", nargs="*")
    collect.add_argument("--zip", default=None, help="a zip of submissions downloaded from the LMS")
    collect.set_defaults(func=_collect)

    grade = step("autograde", "grade every submission in parallel sandboxed kernels")
    grade.add_argument("labs", nargs="*")
    grade.add_argument("--student", action="append", default=None, help="only this learner (repeatable)")
    grade.add_argument("--workers", type=int, default=None, help="parallel kernels (default: 2 per core)")
    grade.add_argument("--force", action="store_true", help="regrade submissions that did not change")
    grade.add_argument("--timeout", type=int, default=None, help="seconds a cell may run (default: course config)")
    grade.add_argument("--memory-mb", type=int, default=2048, help="memory per submission")
    grade.add_argument("--cpu-seconds", type=int, default=300, help="processor time per process")
    grade.add_argument("--processes", type=int, default=128, help="processes one submission may run at once")
    grade.add_argument("--disk-mb", type=int, default=256, help="what one submission's files may hold in all")
    grade.add_argument("--wall-seconds", type=int, default=900,
                       help="time one submission may take in all, every cell and check included")
    grade.add_argument("--no-sandbox", action="store_true",
                       help="grade without the bubblewrap sandbox (only where you trust every submission)")
    grade.set_defaults(func=_autograde)

    feedback = step("feedback", "write HTML feedback for each learner")
    feedback.add_argument("--student", action="append", default=None)
    feedback.set_defaults(func=_feedback)

    report = step("report", "write grades.csv and the cohort report")
    report.set_defaults(func=_report)


def run(args: argparse.Namespace) -> int:
    """Run one course step, turning a CourseError into a clear message and exit code 2."""
    warnings.filterwarnings("ignore", module=r"nbgrader\..*|sqlalchemy\..*|alembic\..*")
    try:
        return int(args.func(args) or 0)
    except CourseError as exc:
        print(f"Problem: {exc}", file=sys.stderr)
        return 2


def _course(args: argparse.Namespace) -> Course:
    return Course.find(args.course)


def _init(args: argparse.Namespace) -> int:
    from .init import init_course

    course = init_course(args.directory, labs_dir=args.labs, graders_dir=args.graders, db_url=args.db,
                         timeout=args.timeout)
    print(f"Course ready in {course.root} with labs: {', '.join(course.labs())}.")
    print(f"Next: cd {course.root} && marketlab course build")
    return 0


def _build(args: argparse.Namespace) -> int:
    from .build import build

    results = build(_course(args), args.labs or None, validate=not args.no_validate)
    for result in results:
        print(result.summary())
    ok = all(r.ok for r in results)
    print("All labs are ready: run `marketlab course release`." if ok else
          "Some labs are not ready; fix what is listed above before releasing.")
    return 0 if ok else 1


def _release(args: argparse.Namespace) -> int:
    from .exchange import release

    course = _course(args)
    labs = release(course, args.labs or None)
    print(f"Released {', '.join(labs)} to {course.folder('exchange')}. Learners fetch them with "
          "the Assignments tab in Jupyter or `nbgrader fetch_assignment`.")
    return 0


def _collect(args: argparse.Namespace) -> int:
    course = _course(args)
    collected: dict[str, list[str]]  # lab -> students, from the zip (a Collected) or the exchange
    if args.zip:
        from .lms import collect_zip

        if len(args.labs) > 1:
            raise CourseError("With --zip, name at most one lab (or none to take every lab in the zip).")
        collected = collect_zip(course, Path(args.zip), args.labs[0] if args.labs else None)
        for name in getattr(collected, "unmatched", []):
            print(f"Skipped (name not understood): {name}")
    else:
        from .exchange import collect, refused_submissions

        collected = collect(course, args.labs or None)
        for refusal in refused_submissions(course):
            print(f"Refused: {refusal['student']}/{refusal['lab']}: {refusal['why']}")
    for lab, students in collected.items():
        print(f"{lab}: {len(students)} submission(s)")
    return 0


def _autograde(args: argparse.Namespace) -> int:
    from marketlab.errors import MarketlabError

    from ..grading.sandbox import Limits
    from .autograde import autograde, flagged

    course = _course(args)
    timeout = args.timeout or int(course.config().Execute.get("timeout", 60))
    try:
        limits = Limits(cell_timeout=timeout, memory_mb=args.memory_mb, cpu_seconds=args.cpu_seconds,
                        wall_seconds=args.wall_seconds, processes=args.processes, disk_mb=args.disk_mb).validated()
        if args.no_sandbox:
            print("Warning: grading WITHOUT the sandbox: learner code runs with your rights.", file=sys.stderr)
        records = autograde(course, labs=args.labs or None, students=args.student, workers=args.workers,
                            limits=limits, force=args.force, sandboxed=not args.no_sandbox)
    except MarketlabError as exc:
        print(exc.message(), file=sys.stderr)
        return 2
    auto = sum(r["auto_score"] for r in records)
    pending = sum(r["manual_pending"] for r in records)
    print(f"Graded {len(records)} submission(s): {auto:g} automatic points; {pending:g} point(s) await hand marking.")
    groups = flagged(records)
    if groups:
        print("Flagged submissions, by kind:")
        for kind, names in groups.items():
            print(f"  {kind} ({len(names)}): {', '.join(names[:12])}{' ...' if len(names) > 12 else ''}")
    print("Next: marketlab course feedback && marketlab course report")
    return 0


def _feedback(args: argparse.Namespace) -> int:
    from .feedback import write_feedback

    paths = write_feedback(_course(args), args.student)
    print(f"Wrote feedback for {len(paths)} learner(s) in {paths[0].parent.parent if paths else 'feedback/'}.")
    return 0


def _report(args: argparse.Namespace) -> int:
    from .report import write_report

    csv, html = write_report(_course(args))
    print(f"Grades: {csv}\nCohort report: {html}")
    return 0
