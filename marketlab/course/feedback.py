"""Feedback for learners: one plain-English HTML page per learner, `feedback/<student>/index.html`.

Pages are rendered by jinja2 with autoescape on, from the typed grading records only
(`marketlab.grading.records.GradingRecord`), never from notebooks, so neither hidden tests nor
solutions can reach a learner. Reasons come from the project's catalogue; the learner's own
error messages appear only in a section labelled as theirs, escaped and truncated. The gradebook
is read for one thing only: the numbers an instructor has since given by hand.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from ..errors import MarketlabError
from ..grading.records import (
    INSTRUCTOR_KINDS,
    NOT_COUNTED,
    CheckOutcome,
    GradingRecord,
    ManualCell,
    Problem,
    explain,
    label,
    record_path,
)
from .layout import Course, CourseError

MAX_TEXT = 600  # longest text from a check, or from the learner's output, shown in one place
MAX_OUTPUTS = 5  # learner output messages shown per lab
RESULTS = {"passed": "Passed", "partial": "Partly passed", "failed": "Not passed", "not run": "Did not run"}
STATES = {  # what each state of a submission is called on a page
    "graded": "Marked",
    "failed": "Could not be marked",
    "not graded yet": "Collected, not marked yet",
    "unreadable": "Grading record unreadable",
    "not submitted": "Not submitted",
}


class FeedbackError(MarketlabError, ValueError):
    """Feedback cannot be written as asked."""


# --- what happened to one submission ---------------------------------------------------------

def clip(text: Any, limit: int = MAX_TEXT) -> str:
    """Text cut to `limit` characters, so one huge message cannot swamp a page."""
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pretty_id(grade_id: str) -> str:
    """A grade id as a heading: "check-objective_stated" -> "Objective stated"."""
    words = re.sub(r"^(check|test)[-_ ]+", "", grade_id.strip(), flags=re.I)
    words = re.sub(r"[-_]+", " ", words).strip() or grade_id
    return words[:1].upper() + words[1:]


def check_name(check: CheckOutcome | ManualCell) -> str:
    """What a cell checks, in words: the check's own description, else its prettified grade id."""
    return clip(getattr(check, "what", "") or pretty_id(check.grade_id), 120)


def outcome(check: CheckOutcome) -> str:
    """passed, partial, failed, or not run (the check could not run: `reason` says why)."""
    if check.max_score > 0 and check.score >= check.max_score or check.max_score <= 0 and check.passed:
        return "passed"
    if check.score > 0:
        return "partial"
    return "not run" if check.reason else "failed"


@dataclass(frozen=True)
class LabResult:
    """One learner's lab: its state and, once graded, its grading record."""

    student: str
    lab: str
    state: str  # a key of STATES
    record: GradingRecord | None = None

    @property
    def graded(self) -> bool:
        """The submission went through grading (marked, or could not be marked)."""
        return self.record is not None and self.state in ("graded", "failed")

    @property
    def score(self) -> float | None:
        """Automatic points plus hand marks so far, None when nothing was graded."""
        return self.record.score if self.graded and self.record else None

    @property
    def marked_max(self) -> float:
        """The points that have been decided so far (hand-marked cells still pending excluded)."""
        return self.record.max_score - self.record.manual_pending if self.graded and self.record else 0.0

    @property
    def percent(self) -> float | None:
        """Score as a percentage of the points decided so far; None without a score."""
        if self.score is None or not self.marked_max:
            return None
        return round(100.0 * self.score / self.marked_max, 1)

    @property
    def manual_marked(self) -> list[ManualCell]:
        """Hand-marked cells the instructor has marked."""
        return [m for m in self.record.manual if m.score is not None] if self.record else []

    @property
    def pending(self) -> list[ManualCell]:
        """Hand-marked cells still awaiting the instructor."""
        return [m for m in self.record.manual if m.score is None] if self.record else []

    @property
    def learner_problems(self) -> list[Problem]:
        """Problems a learner is told about (set-up problems and notes left out)."""
        return self.record.learner_problems if self.record else []

    @property
    def notes(self) -> list[Problem]:
        """Notes for the learner: things the grader did for them (a copied cell ignored...)."""
        return [p for p in self.record.problems if p.kind in NOT_COUNTED] if self.record else []

    @property
    def setup_problem(self) -> bool:
        """Something on the course's side went wrong (the learner is told only that)."""
        record = self.record
        return record is not None and (any(p.kind in INSTRUCTOR_KINDS for p in record.problems)
                                       or any(c.reason in INSTRUCTOR_KINDS for c in record.checks))

    def cell_name(self, grade_id: str) -> str:
        """A cell named as its row in the checks table, else by its prettified grade id."""
        cells: list[CheckOutcome | ManualCell] = [*self.record.checks, *self.record.manual] if self.record else []
        return next((check_name(c) for c in cells if c.grade_id == grade_id), clip(pretty_id(grade_id), 80))

    @property
    def learner_output(self) -> list[str]:
        """The learner's own error messages, truncated, at most MAX_OUTPUTS of them."""
        return [clip(text) for text in self.record.learner_output[:MAX_OUTPUTS]] if self.record else []


def _hand_marks(gb: Any, record: GradingRecord) -> GradingRecord:
    """The record with the scores an instructor has given by hand since autograde (numbers only)."""
    from nbgrader.api import MissingEntry

    if not any(m.score is None for m in record.manual):
        return record
    try:
        submission = gb.find_submission(record.lab, record.student)
    except MissingEntry:
        return record
    given = {(nb.name, g.name): g.manual_score for nb in submission.notebooks for g in nb.grades}
    by_id = {grade_id: score for (_, grade_id), score in given.items()}
    manual = [m if m.score is not None else
              m.model_copy(update={"score": given.get((m.notebook, m.grade_id), by_id.get(m.grade_id))})
              for m in record.manual]
    return record.model_copy(update={"manual": manual})


def lab_result(course: Course, student: str, lab: str) -> LabResult:
    """What the grading record says about one learner's lab."""
    record = course.grading_record(student, lab)
    if record is not None:
        return LabResult(student, lab, record.status, record)
    if record_path(course, student, lab).exists():
        return LabResult(student, lab, "unreadable")
    collected = (course.folder("submitted") / student / lab).is_dir()
    return LabResult(student, lab, "not graded yet" if collected else "not submitted")


def _subfolders(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.is_dir() and not p.is_symlink()} if folder.is_dir() else set()


def student_labs(course: Course, student: str) -> list[str]:
    """The course's labs plus any other lab this learner has a submission or grading record for."""
    graded = {p.stem for p in (course.folder("grading") / student).glob("*.json")}
    return sorted(set(course.labs()) | _subfolders(course.folder("submitted") / student) | graded)


def all_students(course: Course) -> list[str]:
    """Everyone with a collected submission or a grading record."""
    return sorted(set(course.students()) | _subfolders(course.folder("grading")))


@contextmanager
def open_gradebook(course: Course) -> Iterator[Any]:
    """The course's nbgrader gradebook, with a plain message if it cannot be opened."""
    try:
        gb = course.gradebook()
    except CourseError:
        raise
    except Exception as exc:  # the URL may hold a password: name the error, never the URL
        raise CourseError(f"The gradebook cannot be opened ({type(exc).__name__}). Check db_url in "
                          "marketlab-course.json or $MARKETLAB_GRADEBOOK_URL.") from exc
    with gb:
        yield gb


def collect(course: Course, pairs: Iterable[tuple[str, str]]) -> list[LabResult]:
    """LabResults of (student, lab) pairs; cells awaiting hand marking get any mark since given in the gradebook."""
    results = [lab_result(course, student, lab) for student, lab in pairs]
    if not any(r.pending for r in results):
        return results
    with open_gradebook(course) as gb:
        return [replace(r, record=_hand_marks(gb, r.record)) if r.record and r.pending else r for r in results]


# --- HTML -------------------------------------------------------------------------------------

def points(value: float | None) -> str:
    """Points as people write them: 7 rather than 7.0, 2.5 stays 2.5."""
    return "–" if value is None else f"{value:g}"


@cache
def templates() -> jinja2.Environment:
    """The package's page templates; autoescape is always on, undefined names are errors."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("marketlab.course", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(points=points, clip=clip, name=check_name, pretty_id=pretty_id, catalogue_label=label,
                       catalogue_text=explain)
    env.globals.update(outcome=outcome, RESULTS=RESULTS, STATES=STATES, INSTRUCTOR_KINDS=INSTRUCTOR_KINDS)
    return env


def render(template: str, **context: Any) -> str:
    """One page from one template of marketlab/course/templates."""
    return templates().get_template(template).render(**context)


def feedback_html(student: str, results: list[LabResult]) -> str:
    """The feedback page of one learner."""
    return render("feedback.html.j2", student=student, results=results, max_text=MAX_TEXT)


def _safe_name(student: str) -> str:
    if not student or student in (".", "..") or "/" in student or "\\" in student or "\0" in student:
        raise FeedbackError(f"{student!r} is not a valid student id (it would leave the feedback folder).",
                            "Pass the learner's id exactly as it appears in the submitted/ folder.")
    return student


def write_feedback(course: Course, students: list[str] | None = None) -> list[Path]:
    """Write feedback/<student>/index.html for each learner (default: everyone with a submission)."""
    students = [_safe_name(s) for s in (students if students is not None else all_students(course))]
    results = collect(course, [(s, lab) for s in students for lab in student_labs(course, s)])
    written = []
    for student in students:
        target = course.folder("feedback") / student / "index.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(feedback_html(student, [r for r in results if r.student == student]), encoding="utf-8")
        written.append(target)
    return written
