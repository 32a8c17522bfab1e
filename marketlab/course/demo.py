"""`make demo`: a synthetic cohort through the whole pipeline, end to end.

    python -m marketlab.course.demo [DIR] [--learners 16]

init → build → release → (learners submit through the exchange; one lab arrives as an LMS zip)
→ collect → autograde → feedback → report, then prints where the report is.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from ..grading.sandbox import Limits
from ..llm import ledger
from . import autograde as grading
from .build import build
from .cohort import Learner, make_cohort
from .exchange import collect, release, submit
from .feedback import write_feedback
from .init import init_course
from .layout import USAGE_FILE, Course
from .lms import collect_zip, make_lms_zip
from .report import write_report

ZIP_LAB = "01-brief"  # this lab comes in as an LMS download, the others through nbgrader's exchange


def run_demo(directory: Path, *, learners: int = 16, workers: int | None = None, cell_timeout: int = 20,
             validate: bool = True, labs_dir: Path | None = None, say=print) -> Course:
    """Build a course with a synthetic cohort in `directory`, grade it and write feedback and the report.

    labs_dir: the folder of labs to use (default: the repository's labs/).
    """
    directory = Path(directory).resolve()
    if directory.exists():
        shutil.rmtree(directory)
    course = init_course(directory / "course", labs_dir=labs_dir, timeout=cell_timeout)
    say(f"1/7 Course created in {course.root}")
    results = build(course, validate=validate)
    for result in results:
        say("    " + result.summary().replace("\n", "\n    "))
    if not all(r.ok for r in results):
        raise SystemExit("A lab is not ready to release; see above.")
    say("2/7 Student versions built" + (" and validated" if validate else ""))
    release(course)
    say("3/7 Released to the exchange")
    cohort = make_cohort(course.folder("source"), course.folder("release"), directory / "learners",
                         size=learners, seed=0)
    _hand_in(course, cohort, directory)
    say(f"4/7 {len(cohort)} learners handed in ({_mix(cohort)})")
    collect(course, [lab for lab in course.labs() if lab != ZIP_LAB])
    zipped = collect_zip(course, directory / "lms-download.zip", ZIP_LAB)
    say(f"5/7 Collected: {sum(1 for _ in course.submissions())} submissions "
        f"({len(zipped.get(ZIP_LAB, []))} of {ZIP_LAB} from the LMS zip)")
    records = grading.autograde(course, workers=workers, limits=Limits(cell_timeout=cell_timeout), force=True)
    flagged = sum(1 for r in records if r["reason"])
    say(f"6/7 Autograded {len(records)} submissions; {flagged} flagged with a reason")
    write_feedback(course)
    csv, html = write_report(course)
    say(f"7/7 Feedback in {course.folder('feedback')}\n\nGrades: {csv}\nCohort report: {html}")
    return course


def _session_usage(folder: Path, rng: random.Random) -> None:
    """What a learner's own session would have saved: a usage file from a ledger of their calls."""
    with tempfile.TemporaryDirectory() as tmp:
        book = Path(tmp) / "ledger.sqlite"
        model = rng.choice(["smollm2-135m-instruct", "gpt-4o-mini", "gpt-4o-mini", "gpt-4.1-nano"])
        for _ in range(rng.randint(3, 40)):
            ledger.record(backend="local" if model.startswith("smollm") else "openai", model=model,
                          endpoint="/chat/completions", status=200, prompt_tokens=rng.randint(200, 900),
                          completion_tokens=rng.randint(60, 300), latency_ms=rng.uniform(300, 2500), path=book)
        ledger.export_usage(folder / USAGE_FILE, ledger=book)


def _hand_in(course: Course, cohort: list[Learner], directory: Path) -> None:
    """Every learner submits through the exchange, except one lab that an LMS delivers as a zip."""
    zipped = directory / "lms"
    rng = random.Random(0)
    for learner in cohort:
        for lab, folder in learner.labs.items():
            if folder.is_dir():
                _session_usage(folder, rng)
            if lab == ZIP_LAB:
                shutil.copytree(folder, zipped / learner.student_id / lab)
            else:
                submit(course, learner.student_id, folder)
    make_lms_zip(zipped, directory / "lms-download.zip")


def _mix(cohort: list[Learner]) -> str:
    counts: dict[str, int] = {}
    for learner in cohort:
        counts[learner.profile] = counts.get(learner.profile, 0) + 1
    return ", ".join(f"{n} {profile}" for profile, n in counts.items())


def main(argv: list[str] | None = None) -> int:
    """Command line of the demo."""
    parser = argparse.ArgumentParser(description="Run the instructor pipeline on a synthetic cohort.")
    parser.add_argument("directory", nargs="?", default=None, help="where to build it (default: a temp folder)")
    parser.add_argument("--learners", type=int, default=16, help="ordinary learners (14 hostile ones come on top)")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    directory = Path(args.directory or tempfile.mkdtemp(prefix="marketlab-demo-", dir="/var/tmp"))
    run_demo(directory, learners=args.learners, workers=args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
