"""Feedback for learners: one plain-English HTML page per learner, `feedback/<student>/index.html`.

Only the gradebook (scores) and the grading records (reasons, problems) are read; never the
notebooks, so neither hidden tests nor solutions can reach a learner. Every piece of text that a
learner could have influenced (names, error messages, problem details) is HTML-escaped.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .layout import Course, CourseError

MAX_TEXT = 600  # longest error or problem text shown; a learner's exception message can be huge

# Problem kinds from the grading record, as a marketer would say them.
PROBLEM_LABELS = {
    "timeout": "Took too long",
    "memory": "Ran out of memory",
    "cpu_time": "Used too much computing time",
    "exit": "The notebook stopped itself",
    "kernel_died": "The notebook crashed",
    "corrupt_notebook": "The notebook file is damaged",
    "missing_cells": "Some cells are missing",
    "reordered_cells": "The check cells were moved",
    "edited_tests": "The check cells were changed",
    "forbidden_read": "Tried to open files it must not",
    "forbidden_process": "Tried to start other programs",
    "huge_output": "Printed far too much output",
    "network": "Tried to use the internet",
    "write_outside": "Tried to write files outside its folder",
    "error": "An error stopped the notebook",
    "sandbox": "The grading sandbox was weaker than usual",
}
INSTRUCTOR_ONLY_KINDS = {"sandbox"}  # about the grading machine, not the learner's work
STATUS_TEXT = {
    "graded": "Marked",
    "failed": "Could not be marked",
    "not graded yet": "Not marked yet",
    "not submitted": "Not submitted",
}

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:960px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:2px solid #ddd}
table{border-collapse:collapse;width:100%;margin:.6em 0 1em}
th,td{border:1px solid #ddd;padding:.35em .55em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;white-space:nowrap}
.score{font-size:1.15em;font-weight:bold}
.passed{color:#1b7a31;font-weight:bold}.failed{color:#b3261e;font-weight:bold}
.partial{color:#a15c00;font-weight:bold}.manual{color:#36c;font-weight:bold}
.note{background:#fff6e0;border-left:4px solid #e0a800;padding:.5em .8em;margin:.6em 0}
.bad{background:#fdecea;border-left:4px solid #b3261e;padding:.5em .8em;margin:.6em 0}
.muted{color:#666}img{max-width:100%}
"""


# --- what happened to one submission ---------------------------------------------------------

@dataclass(frozen=True)
class CheckResult:
    """One graded cell of one submission: its points and, if it did not pass, why."""

    lab: str
    notebook: str
    grade_id: str
    score: float | None
    max_score: float
    autograded: bool
    error: str | None = None

    @property
    def outcome(self) -> str:
        """passed, partial, failed (automatic checks), manual (marked by the instructor) or pending."""
        if not self.autograded:
            return "manual" if self.score is not None else "pending"
        score = self.score or 0.0
        if score >= self.max_score:
            return "passed"
        return "partial" if score > 0 else "failed"


@dataclass(frozen=True)
class LabResult:
    """One learner's result for one lab, from the gradebook and the grading record."""

    student: str
    lab: str
    status: str
    score: float | None
    max_score: float
    reason: str = ""
    problems: list[dict[str, str]] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def percent(self) -> float | None:
        """Score as a percentage of the maximum, None when there is no score or no maximum."""
        if self.score is None or not self.max_score:
            return None
        return round(100.0 * self.score / self.max_score, 1)


def clip(text: Any, limit: int = MAX_TEXT) -> str:
    """Text cut to `limit` characters, so one huge message cannot swamp a page."""
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _problems(record: dict[str, Any]) -> list[dict[str, str]]:
    problems = record.get("problems")
    cleaned = []
    for problem in problems if isinstance(problems, list) else []:
        if not isinstance(problem, dict):
            continue
        kind, detail, cell = (clip(problem.get(key) or "", 200 if key != "detail" else MAX_TEXT)
                              for key in ("kind", "detail", "cell"))
        if kind or detail:
            cleaned.append({"kind": kind, "detail": detail, "cell": cell})
    return cleaned


def _record_cells(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    cells = record.get("cells")
    if not isinstance(cells, dict):
        return {}
    return {str(name): cell for name, cell in cells.items() if isinstance(cell, dict)}


def _number(value: Any) -> float | None:
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None


def _grade_score(grade: Any) -> float | None:
    if grade.manual_score is None and grade.auto_score is None:
        return None
    return float(grade.score)


def _check(lab: str, name: str, cell: dict[str, Any], grade: Any, failed: bool) -> CheckResult:
    if grade is not None:
        autograded = cell.get("autograded") if isinstance(cell.get("autograded"), bool) \
            else grade.auto_score is not None
        score, max_score, notebook = _grade_score(grade), float(grade.max_score), grade.notebook.name
    else:
        autograded = cell.get("autograded") is not False
        score, max_score = _number(cell.get("score")), _number(cell.get("max_score")) or 0.0
        notebook = str(cell.get("notebook") or lab)
    if failed and autograded:
        score = 0.0
    error = clip(cell["error"]) if cell.get("error") else None
    return CheckResult(lab, notebook, name, score, max_score, autograded, error)


def _submission(gb: Any, lab: str, student: str) -> Any:
    from nbgrader.api import MissingEntry

    try:
        return gb.find_submission(lab, student)
    except MissingEntry:
        return None


def _assignment_max(gb: Any, lab: str) -> float | None:
    from nbgrader.api import MissingEntry

    try:
        return float(gb.find_assignment(lab).max_score)
    except MissingEntry:
        return None


def _status(course: Course, student: str, lab: str, record: dict[str, Any] | None, submission: Any) -> str:
    if record is not None:
        return "failed" if record.get("status") == "failed" else "graded"
    if submission is not None:
        return "graded"
    return "not graded yet" if (course.folder("submitted") / student / lab).is_dir() else "not submitted"


def _reason(course: Course, student: str, lab: str, record: dict[str, Any] | None, status: str) -> str:
    if record is not None:
        return clip(record.get("reason") or "")
    if course.grading_record_path(student, lab).exists():
        return "The grading record of this submission is unreadable; ask your instructor to grade it again."
    if status == "not graded yet":
        return "Your submission has been collected but not marked yet."
    return ""


def lab_result(course: Course, gb: Any, student: str, lab: str) -> LabResult:
    """What the gradebook and the grading record say about one learner's lab."""
    record = course.grading_record(student, lab)
    record = record if isinstance(record, dict) else None
    submission = _submission(gb, lab, student)
    status = _status(course, student, lab, record, submission)
    cells = _record_cells(record or {})
    grades = {g.name: g for nb in submission.notebooks for g in nb.grades} if submission is not None else {}
    failed = status == "failed" and submission is None
    checks = [_check(lab, name, cells.get(name, {}), grades.get(name), failed)
              for name in [*cells, *(n for n in grades if n not in cells)]]
    if submission is not None:
        score: float | None = float(submission.score)
        max_score = float(submission.max_score)
    else:
        score = 0.0 if status == "failed" else _number((record or {}).get("score"))
        max_score = _assignment_max(gb, lab) or _number((record or {}).get("max_score")) or 0.0
    return LabResult(student, lab, status, score, max_score, _reason(course, student, lab, record, status),
                     _problems(record or {}), checks)


def student_labs(course: Course, student: str) -> list[str]:
    """The course's labs plus any other lab this learner has a submission or grading record for."""
    found = set(course.labs())
    for top in ("submitted", "autograded"):
        folder = course.folder(top) / student
        if folder.is_dir():
            found.update(p.name for p in folder.iterdir() if p.is_dir())
    return sorted(found)


def all_students(course: Course) -> list[str]:
    """Everyone with a collected submission or a grading record."""
    autograded = course.folder("autograded")
    graded = {p.name for p in autograded.iterdir() if p.is_dir()} if autograded.is_dir() else set()
    return sorted(set(course.students()) | graded)


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


# --- HTML -------------------------------------------------------------------------------------

def esc(text: Any) -> str:
    """HTML-escaped text (quotes too), for anything that goes into a page."""
    return html.escape("" if text is None else str(text), quote=True)


def points(value: float | None) -> str:
    """Points as people write them: 7 rather than 7.0, 2.5 stays 2.5."""
    return "–" if value is None else f"{value:g}"


def page(title: str, body: str) -> str:
    """A complete self-contained HTML page (inline CSS, no scripts)."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n")


def problem_text(problem: dict[str, str]) -> str:
    """One problem of a grading record as a plain sentence (not escaped)."""
    label = PROBLEM_LABELS.get(problem["kind"], "Problem")
    detail = problem["detail"] or "No details were recorded."
    where = f" (cell “{problem['cell']}”)" if problem["cell"] and problem["cell"] not in detail else ""
    return f"{label}: {detail}{where}"


def _check_row(check: CheckResult) -> str:
    outcome = check.outcome
    if outcome == "manual":
        result, why = "Marked by your instructor", ""
    elif outcome == "pending":
        result, why = "Marked by your instructor", "Not marked yet."
    else:
        result = {"passed": "Passed", "partial": "Partly passed", "failed": "Not passed"}[outcome]
        why = "" if outcome == "passed" else (check.error or "This check did not give full points; "
                                              "see the problems above, if any.")
    return (f"<tr><td>{esc(check.grade_id)}</td><td class=\"{outcome}\">{esc(result)}</td>"
            f"<td class=\"num\">{esc(points(check.score))} / {esc(points(check.max_score))}</td>"
            f"<td>{esc(why)}</td></tr>")


def _lab_section(result: LabResult) -> str:
    parts = [f"<section><h2>{esc(result.lab)}</h2>"]
    if result.status == "not submitted":
        parts.append('<p class="muted">You have not submitted this lab.</p></section>')
        return "".join(parts)
    percent = f" ({result.percent:g}%)" if result.percent is not None else ""
    parts.append(f'<p class="score">{esc(points(result.score))} / {esc(points(result.max_score))} points'
                 f"{esc(percent)} <span class=\"muted\">· {esc(STATUS_TEXT[result.status])}</span></p>")
    if result.reason:
        css = "bad" if result.status == "failed" else "note"
        parts.append(f'<p class="{css}">{esc(result.reason)}</p>')
    problems = [p for p in result.problems if p["kind"] not in INSTRUCTOR_ONLY_KINDS]
    if problems:
        items = "".join(f"<li>{esc(problem_text(p))}</li>" for p in problems)
        parts.append(f"<p>Problems while running your notebook:</p><ul>{items}</ul>")
    if result.checks:
        rows = "".join(_check_row(c) for c in result.checks)
        parts.append("<table><tr><th>Check</th><th>Result</th><th>Points</th><th>What went wrong</th></tr>"
                     f"{rows}</table>")
    parts.append("</section>")
    return "".join(parts)


def feedback_html(student: str, results: list[LabResult]) -> str:
    """The feedback page of one learner."""
    intro = ("<p>This page shows how each of your lab submissions was marked. A <b>check</b> is an "
             "automatic test of one task; answers in your own words are marked by your instructor. "
             "Where a check did not pass, the last column says why.</p>")
    sections = "".join(_lab_section(r) for r in results) or "<p>No labs yet.</p>"
    body = (f"<h1>Your lab feedback: {esc(student)}</h1>{intro}{sections}"
            '<p class="muted">Questions about a mark? Ask your instructor.</p>')
    return page(f"Lab feedback: {student}", body)


def _safe_name(student: str) -> str:
    if not student or student in (".", "..") or "/" in student or "\\" in student or "\0" in student:
        raise ValueError(f"{student!r} is not a valid student id (it would leave the feedback folder).")
    return student


def write_feedback(course: Course, students: list[str] | None = None) -> list[Path]:
    """Write feedback/<student>/index.html for each learner (default: everyone with a submission)."""
    students = [_safe_name(s) for s in (students if students is not None else all_students(course))]
    written = []
    with open_gradebook(course) as gb:
        for student in students:
            results = [lab_result(course, gb, student, lab) for lab in student_labs(course, student)]
            target = course.folder("feedback") / student / "index.html"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(feedback_html(student, results), encoding="utf-8")
            written.append(target)
    return written
