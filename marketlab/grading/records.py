"""The grading record: one typed record per submission, shared by autograde, feedback and report.

Every reason in a record comes from `CATALOGUE`, written by the project. A learner's code can put
text in one place only: `learner_output`, their own cells' error messages, kept short and always
shown as theirs (feedback and report escape everything through jinja2's autoescape).
Records live in `grading/<student>/<lab>.json` of the course folder, a folder no grading kernel can see.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field, ValidationError


class CourseFolder(Protocol):
    """All a record needs of a course: its folder. `marketlab.course.layout.Course` is one; naming it
    here instead of importing it keeps this module a leaf, so the course layout can import records."""

    @property
    def root(self) -> Path:
        """The course folder."""


# kind -> (label for people, what it means). The only reasons a record can give.
CATALOGUE: Mapping[str, tuple[str, str]] = MappingProxyType({
    "not_submitted": ("Not submitted", "No notebook of this lab was submitted."),
    "corrupt_notebook": ("The notebook file is damaged",
                         "The notebook cannot be opened; it may have been cut off while saving. Re-download the "
                         "lab, copy your answers in, save and submit again."),
    "deep_notebook": ("The notebook's hidden settings are nested too deeply",
                      "The notebook file is valid, but its metadata (hidden settings) is nested more deeply than "
                      "grading reads, so it was not run. Re-download the lab, copy your answers in, save and "
                      "submit again."),
    "missing_cells": ("Some check cells are missing",
                      "Check cells were deleted, so they score 0. Re-download the lab, copy your answers in and "
                      "submit again."),
    "edited_tests": ("A check cell was changed", "A check cell was edited; the original check was used instead, so "
                                                 "the edit changed nothing."),
    "reordered_cells": ("Cells were moved", "Answer or check cells are not in their original order; each ran where "
                                            "it now stands, which can make checks fail. Move them back."),
    "duplicate_cell": ("A cell was copied", "A copy of an answer or check cell was found; the first copy was "
                                            "graded and the copy was ignored."),
    "extra_cell": ("A cell carried grading marks", "A cell carried grading marks the lab does not have; they were "
                                                   "ignored and the cell ran as ordinary code."),
    "refused_file": ("A file was refused", "A file in the submission was not a plain file (a link, a device, too "
                                           "large, or a name that is not plain text: unreadable characters, "
                                           "control characters, or over 120 characters) and was left out. "
                                           "Rename it with letters, digits, spaces, dots or dashes."),
    "timeout": ("Took too long", "A cell ran past the time limit for one cell and was stopped. Look for a loop "
                                 "that never ends."),
    "time_limit": ("Ran out of time", "The notebook used all the time one submission may take; the checks that "
                                      "had not run yet score 0."),
    "memory": ("Ran out of memory", "A cell tried to use more memory than a submission may. Work on smaller pieces "
                                    "of data."),
    "exit": ("The notebook stopped itself", "A cell called sys.exit() or exit(), which stops the notebook. Remove "
                                            "the call."),
    "kernel_died": ("The notebook crashed", "The notebook's Python process died while running (it crashed, was "
                                            "killed by a limit, or a cell ended it); the checks after that point "
                                            "score 0."),
    "kernel_failed": ("The notebook could not start", "The grading kernel could not start for this submission."),
    "processes": ("Started too many processes", "The notebook started more processes at once than a submission "
                                                "may, so it was stopped; the checks after that point score 0. Look "
                                                "for code that starts programs or processes in a loop."),
    "disk": ("Wrote too much to disk", "The notebook's files grew past what a submission may keep, so it was "
                                       "stopped; the checks after that point score 0. Save smaller files, or fewer."),
    "huge_output": ("Printed far too much", "The notebook printed more output than grading keeps; the rest was "
                                            "cut."),
    "no_grader": ("A check has no grader", "The course has no grader for one of this lab's check cells (an "
                                           "instructor's set-up problem, not the learner's)."),
    "grader_error": ("A grader failed", "One of the course's graders failed on this submission (an instructor's "
                                        "set-up problem, not the learner's)."),
    "not_run": ("A check did not run", "The notebook stopped before it reached this check."),
    "error": ("Could not be graded", "Grading could not finish for this submission; the instructor has the detail."),
})
INSTRUCTOR_KINDS = frozenset({"no_grader", "grader_error", "kernel_failed", "error"})  # set-up problems
NOT_COUNTED = frozenset({"duplicate_cell", "extra_cell"})  # notes, not problems


def label(kind: str) -> str:
    """A problem kind as people say it."""
    return CATALOGUE.get(kind, CATALOGUE["error"])[0]


def explain(kind: str) -> str:
    """What a problem kind means, in one or two sentences."""
    return CATALOGUE.get(kind, CATALOGUE["error"])[1]


class Problem(BaseModel):
    """One thing that went wrong (or a note), by catalogue kind."""

    kind: str
    cell: str | None = None

    @property
    def label(self) -> str:
        """The kind as people say it."""
        return label(self.kind)

    @property
    def text(self) -> str:
        """What it means."""
        return explain(self.kind)


class CheckOutcome(BaseModel):
    """One check cell: decided by the grader outside the sandbox."""

    grade_id: str
    notebook: str = ""
    name: str = ""
    what: str = ""
    passed: bool = False
    score: float = 0.0
    max_score: float = 0.0
    problems: list[str] = Field(default_factory=list)  # written by the check; learner values quoted, truncated
    hint: str = ""
    reason: str = ""  # a catalogue kind when the check could not run


class ManualCell(BaseModel):
    """A cell marked by hand (a reflection): pending until the instructor marks it."""

    grade_id: str
    notebook: str = ""
    score: float | None = None
    max_score: float = 0.0


class GradingRecord(BaseModel):
    """What happened to one submission."""

    student: str
    lab: str
    status: Literal["graded", "failed", "not submitted"] = "graded"
    checks: list[CheckOutcome] = Field(default_factory=list)
    manual: list[ManualCell] = Field(default_factory=list)
    problems: list[Problem] = Field(default_factory=list)
    learner_output: list[str] = Field(default_factory=list)  # the learner's own errors, truncated: theirs
    seconds: float = 0.0
    fingerprint: str = ""
    graded_at: str = ""
    instructor_detail: str = ""  # for the instructor's log only; never rendered for a learner

    @property
    def auto_score(self) -> float:
        """Points from automatic checks."""
        return round(sum(c.score for c in self.checks), 2)

    @property
    def auto_max(self) -> float:
        """Points automatic checks can give."""
        return round(sum(c.max_score for c in self.checks), 2)

    @property
    def manual_pending(self) -> float:
        """Points awaiting hand marking."""
        return round(sum(m.max_score for m in self.manual if m.score is None), 2)

    @property
    def score(self) -> float:
        """Automatic points plus hand-marked points so far."""
        return round(self.auto_score + sum(m.score or 0 for m in self.manual), 2)

    @property
    def max_score(self) -> float:
        """Every point of the lab."""
        return round(self.auto_max + sum(m.max_score for m in self.manual), 2)

    @property
    def learner_problems(self) -> list[Problem]:
        """Problems that are about the learner's work (not the grading set-up), notes excluded."""
        return [p for p in self.problems if p.kind not in INSTRUCTOR_KINDS and p.kind not in NOT_COUNTED]

    @property
    def reason(self) -> str:
        """One plain sentence for the first problem, or ''."""
        problems = self.learner_problems or [p for p in self.problems if p.kind not in NOT_COUNTED]
        return problems[0].text if problems else ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the derived totals (for spreadsheets and older readers)."""
        data = self.model_dump()
        data.update(score=self.score, max_score=self.max_score, auto_score=self.auto_score, auto_max=self.auto_max,
                    manual_pending=self.manual_pending, reason=self.reason)
        return data


def record_path(course: CourseFolder, student: str, lab: str) -> Path:
    """Where a submission's record lives (grader-only folder)."""
    return course.root / "grading" / student / f"{lab}.json"


def write(course: CourseFolder, record: GradingRecord) -> Path:
    """Write a record atomically; a planted file or folder in its place is replaced, never followed."""
    if not record.graded_at:
        record.graded_at = datetime.now(UTC).isoformat(timespec="seconds")
    path = record_path(course, record.student, record.lab)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".record-")
    with os.fdopen(handle, "w") as stream:
        json.dump(record.as_dict(), stream, indent=2)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    os.replace(temporary, path)
    return path


def read(course: CourseFolder, student: str, lab: str) -> GradingRecord | None:
    """The record of one submission, or None when it was not graded (or the file is unreadable)."""
    path = record_path(course, student, lab)
    try:
        data = json.loads(path.read_text())
        return GradingRecord.model_validate({k: v for k, v in data.items() if k in GradingRecord.model_fields})
    except (OSError, ValueError, ValidationError):
        return None
