"""Learner feedback, cohort report and usage files, from typed grading records on a small fake course."""

from __future__ import annotations

import html
import json
import os
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest
from markupsafe import escape
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbgrader.api import Gradebook

from marketlab.course.feedback import write_feedback
from marketlab.course.layout import SETTINGS_FILE, USAGE_FILE, Course
from marketlab.course.report import write_report
from marketlab.grading import records
from marketlab.grading.records import CheckOutcome, GradingRecord, ManualCell, Problem
from marketlab.llm import ledger

# nbgrader's own add_submission warns about SQLAlchemy autoflush while the fake gradebook is filled
pytestmark = [pytest.mark.nbgrader, pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")]

HIDDEN = "HIDDEN-TEST-MARKER-7731"
SOLUTION = "SOLUTION-MARKER-5190"
HOSTILE_OUTPUT = "CheckFailed: nothing to see <script>alert('pwned')</script>"
HOSTILE_NAME = "<script>"  # a learner id is a folder name: anything but "/" goes
FORMULA_NAME = "=1+1"
LONG_OUTPUT = "x" * 5000
GRADER_DETAIL = "graders/lab01.py raised KeyError('brief') in grade_brief"
OBJECTIVE = "The brief states one business objective"
ACCEPTANCE = "The brief has no acceptance tests: found 'Goal: sell more'."
HINT = "Add a line that starts with 'Acceptance:'."


def _source_notebook(lab: str) -> nbformat.NotebookNode:
    """An instructor notebook with hidden tests and a solution: none of it may reach a page."""
    meta = {"nbgrader": {"grade": True, "grade_id": "check", "points": 1, "locked": True, "schema_version": 3}}
    return new_notebook(cells=[new_markdown_cell(f"# {lab}\n### BEGIN SOLUTION\n{SOLUTION}\n### END SOLUTION"),
                               new_code_cell(f"### BEGIN HIDDEN TESTS\nassert '{HIDDEN}'\n### END HIDDEN TESTS",
                                             metadata=meta)])


def _brief(student: str, objective: float = 1.0, brief: float = 2.0, *, reflection: float | None = None,
           **fields: Any) -> GradingRecord:
    """A record of lab 01-brief: two automatic checks and one hand-marked reflection."""
    checks = fields.pop("checks", None) or [
        CheckOutcome(grade_id="check-objective", notebook="01-brief", what=OBJECTIVE, passed=objective == 1.0,
                     score=objective, max_score=1.0),
        CheckOutcome(grade_id="check-brief", notebook="01-brief", passed=brief == 2.0, score=brief, max_score=2.0)]
    manual = [ManualCell(grade_id="reflect-vendor", notebook="01-brief", score=reflection, max_score=3.0)]
    return GradingRecord(student=student, lab="01-brief", checks=checks, manual=manual, seconds=1.5, **fields)


def _segments(student: str, score: float = 2.0, **fields: Any) -> GradingRecord:
    """A record of lab 02-segments: two automatic checks."""
    checks = fields.pop("checks", None) or [
        CheckOutcome(grade_id=name, notebook="02-segments", passed=score == 2.0, score=score, max_score=2.0)
        for name in ("check-segments", "check-size")]
    return GradingRecord(student=student, lab="02-segments", checks=checks, seconds=1.5, **fields)


def _not_run(grade_id: str, max_score: float, reason: str) -> CheckOutcome:
    return CheckOutcome(grade_id=grade_id, max_score=max_score, reason=reason)


RECORDS = [
    _brief("ana"),  # reflection marked by hand in the gradebook after autograde
    _segments("ana"),
    _brief("ben", brief=0.0, checks=None, learner_output=[HOSTILE_OUTPUT, LONG_OUTPUT]),
    _segments("ben", 0.0, status="failed", problems=[Problem(kind="corrupt_notebook")],
              checks=[_not_run("check-segments", 2.0, "not_run"), _not_run("check-size", 2.0, "not_run")]),
    _brief("cy", reflection=2.0, problems=[Problem(kind="memory", cell="check-objective"),
                                           Problem(kind="grader_error", cell="check-brief")],
           instructor_detail=GRADER_DETAIL,
           checks=[_not_run("check-objective", 1.0, "not_run"), _not_run("check-brief", 2.0, "grader_error")]),
    _segments("cy"),
    _brief("dan", reflection=3.0, problems=[Problem(kind="edited_tests", cell="check-brief"),
                                            Problem(kind="duplicate_cell", cell="check-objective")]),
    GradingRecord(student="dan", lab="02-segments", status="not submitted", problems=[Problem(kind="not_submitted")]),
    _brief(HOSTILE_NAME, reflection=3.0, learner_output=["<img src=x onerror=alert(1)>"]),
    _brief(FORMULA_NAME, reflection=3.0),
]
STUDENTS = ["<script>", "=1+1", "ana", "ben", "cy", "dan"]


def _ben_fails_the_brief(record: GradingRecord) -> GradingRecord:
    if (record.student, record.lab) == ("ben", "01-brief"):
        record.checks[1].problems = [ACCEPTANCE]
        record.checks[1].hint = HINT
    return record


def _usage(cost: float | None, calls: int = 3) -> dict[str, Any]:
    return {"exported_at": "2026-11-23T09:00:00+00:00", "since": None, "models": [
        {"backend": "openai", "model": "gpt-4o-mini", "calls": calls, "prompt_tokens": 1000,
         "completion_tokens": 200, "cost_usd": cost, "errors": 0}]}


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _fill_gradebook(url: str) -> None:
    """nbgrader's gradebook after autograde, with ana's reflection since marked by hand (3 of 3)."""
    with Gradebook(url, course_id="marketlab") as gb:
        gb.add_assignment("01-brief")
        gb.update_or_create_notebook("01-brief", "01-brief")
        for name, points, cell_type in (("check-objective", 1.0, "code"), ("check-brief", 2.0, "code"),
                                        ("reflect-vendor", 3.0, "markdown")):
            gb.update_or_create_grade_cell(name, "01-brief", "01-brief", max_score=points, cell_type=cell_type)
        for student in ("ana", "ben"):
            gb.add_student(student)
            submission = gb.update_or_create_submission("01-brief", student)
            for grade in submission.notebooks[0].grades:
                if grade.name == "reflect-vendor":
                    grade.manual_score = 3.0 if student == "ana" else None
            gb.db.commit()


@pytest.fixture
def course(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Course:
    monkeypatch.delenv("MARKETLAB_GRADEBOOK_URL", raising=False)
    # nbgrader runs the `alembic` command for a new gradebook: find it beside this Python
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    root = tmp_path / "course"
    url = f"sqlite:///{root / 'gradebook.db'}"
    _write_json(root / SETTINGS_FILE, {"course_id": "marketlab", "labs_dir": str(tmp_path / "labs"), "db_url": url})
    for lab in ("01-brief", "02-segments"):
        (root / "source" / lab).mkdir(parents=True)
        nbformat.write(_source_notebook(lab), root / "source" / lab / f"{lab}.ipynb")
    _fill_gradebook(url)
    course = Course(root)
    for record in RECORDS:
        records.write(course, _ben_fails_the_brief(record.model_copy(deep=True)))
        folder = root / "submitted" / record.student / record.lab
        folder.mkdir(parents=True)
        # a submitted notebook holding the hidden tests: feedback must never read notebooks
        nbformat.write(_source_notebook(record.lab), folder / f"{record.lab}.ipynb")
    _write_json(root / "submitted" / "ana" / "01-brief" / USAGE_FILE, _usage(0.0125))
    _write_json(root / "submitted" / "ana" / "02-segments" / USAGE_FILE, _usage(0.025, calls=5))
    (root / "submitted" / "ben" / "01-brief" / USAGE_FILE).write_text('{"models": [ {"calls": 3,')
    _write_json(root / "submitted" / "dan" / "01-brief" / USAGE_FILE, _usage(None))
    return course


def _section(page: str, title: str, tag: str = "h2") -> str:
    start = page.index(f"<{tag}>{title}")
    end = page.find(f"<{tag}>", start + 1)
    return page[start:end if end != -1 else None]


def _row(section: str, first_cell: str) -> str:
    match = re.search(rf"<tr><td[^>]*>{re.escape(first_cell)}</td>.*?</tr>", section)
    assert match, f"no row for {first_cell}"
    return match.group(0)


def _text(page: str) -> str:
    """The page as a reader sees it: tags dropped, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


# ---- feedback --------------------------------------------------------------------------------


@pytest.fixture
def pages(course: Course) -> dict[str, str]:
    paths = write_feedback(course)
    assert paths == [course.root / "feedback" / s / "index.html" for s in STUDENTS]
    return {p.parent.name: p.read_text() for p in paths}


def test_feedback_escapes_learner_text_and_never_shows_tests(pages: dict[str, str]) -> None:
    for page in pages.values():
        assert HIDDEN not in page and SOLUTION not in page and "BEGIN HIDDEN" not in page
        assert "<script" not in page and "<img" not in page
    hostile = pages[HOSTILE_NAME]
    assert "Your lab feedback: &lt;script&gt;</h1>" in hostile
    assert "&lt;img src=x onerror=alert(1)&gt;" in hostile

    ben = _section(pages["ben"], "01-brief")
    theirs = ben.index("<h3>What your notebook printed</h3>")
    assert "your notebook's own output" in ben[theirs:]
    escaped = "CheckFailed: nothing to see &lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;"
    assert ben.index(escaped) > theirs and escaped in re.findall(r'<pre class="theirs">(.*?)</pre>', ben, re.S)
    longest = max(re.findall(r'<pre class="theirs">(.*?)</pre>', ben, re.S), key=len)
    assert longest.startswith("xxx") and longest.endswith("…") and len(longest) == 600


def test_feedback_gives_catalogue_reasons_and_readable_check_names(pages: dict[str, str]) -> None:
    label, text = records.CATALOGUE["corrupt_notebook"]
    segments = _text(_section(pages["ben"], "02-segments"))
    assert "Automatic checks: 0 / 4 points · Could not be marked" in segments
    assert f"{label}. {text}" in segments
    assert records.CATALOGUE["not_run"][1] in segments

    brief = _section(pages["ben"], "01-brief")
    assert "<tr><td>Brief</td><td class=\"failed\">Not passed</td>" in brief
    assert escape(ACCEPTANCE) in brief and escape(HINT) in brief
    assert f"<tr><td>{OBJECTIVE}</td><td class=\"passed\">Passed</td>" in brief
    assert "check-objective" not in _text(brief)

    cy = _text(_section(pages["cy"], "01-brief"))
    memory_label, memory_text = records.CATALOGUE["memory"]
    assert f"{memory_label}. {memory_text} (cell “Objective”)" in cy
    notes = _text(_section(pages["dan"], "01-brief"))
    assert records.CATALOGUE["duplicate_cell"][1] in notes and records.CATALOGUE["edited_tests"][1] in notes
    assert f"{records.CATALOGUE['duplicate_cell'][1]} (cell “{OBJECTIVE}”)" in notes  # named as in its table row


def test_feedback_shows_automatic_score_and_hand_marking_apart(pages: dict[str, str]) -> None:
    ben = _text(_section(pages["ben"], "01-brief"))
    assert "Automatic checks: 1 / 3 points" in ben
    assert "Awaiting hand marking: 3 points." in ben and "these points are not lost" in ben
    assert "Reflect vendor Awaiting hand marking – / 3" in ben
    assert "/ 6" not in ben  # the unmarked reflection is not shown as a lost point

    ana = _text(_section(pages["ana"], "01-brief"))  # marked in the gradebook since autograde
    assert "Automatic checks: 3 / 3 points" in ana and "Marked by your instructor: 3 / 3 points" in ana
    assert "Awaiting hand marking" not in ana and "Not passed" not in ana


def test_feedback_says_not_submitted_rather_than_zero(pages: dict[str, str]) -> None:
    for student in ("dan", HOSTILE_NAME):  # dan's record says so; the other has no record at all
        segments = _text(_section(pages[student], "02-segments"))
        assert segments.startswith("02-segments Not submitted") and "You have not handed in this lab" in segments
        assert "points" not in segments and "0 / 0" not in segments
    assert records.CATALOGUE["not_submitted"][1] in _section(pages["dan"], "02-segments")


def test_feedback_hides_set_up_problems_from_the_learner(pages: dict[str, str]) -> None:
    cy = _section(pages["cy"], "01-brief")
    for kind in records.INSTRUCTOR_KINDS:
        label, text = records.CATALOGUE[kind]
        assert label not in cy and text not in cy
    assert GRADER_DETAIL not in cy and "KeyError" not in cy
    assert "did not work on the course's side" in cy
    assert "Not marked automatically because of a problem on the course's side" in _row(cy, "Brief")


def test_feedback_refuses_a_student_id_outside_the_folder(course: Course) -> None:
    with pytest.raises(ValueError, match="not a valid student id"):
        write_feedback(course, ["../ana"])


# ---- report ----------------------------------------------------------------------------------


def test_grades_csv_splits_automatic_and_hand_marked_points(course: Course) -> None:
    csv_path, _ = write_report(course)
    frame = pd.read_csv(csv_path, keep_default_na=False, na_values=[""]).set_index(["student", "lab"])
    assert list(frame.columns[:8]) == ["score", "max_score", "percent", "status", "reason", "auto_score",
                                       "auto_max", "awaiting_hand_marking"]
    assert len(frame) == 12
    assert frame.loc[("ana", "01-brief"), ["score", "max_score", "percent"]].tolist() == [6.0, 6.0, 100.0]
    assert frame.loc[("ana", "01-brief"), "01-brief:reflect-vendor"] == 3.0  # from the gradebook
    ben = frame.loc[("ben", "01-brief")]
    assert ben[["score", "max_score", "percent", "auto_score", "auto_max", "awaiting_hand_marking"]].tolist() == \
        [1.0, 6.0, 33.3, 1.0, 3.0, 3.0]
    assert ben["01-brief:check-brief"] == 0.0 and pd.isna(ben["01-brief:reflect-vendor"])
    failed = frame.loc[("ben", "02-segments")]
    assert failed[["score", "max_score", "status"]].tolist() == [0.0, 4.0, "failed"]
    assert failed["reason"] == records.CATALOGUE["corrupt_notebook"][1]
    for key in (("dan", "02-segments"), (HOSTILE_NAME, "02-segments")):
        assert frame.loc[key, "status"] == "not submitted" and pd.isna(frame.loc[key, "score"])
    assert frame.loc[("cy", "01-brief"), ["score", "percent"]].tolist() == [2.0, 33.3]
    assert ("'" + FORMULA_NAME, "01-brief") in frame.index  # kept as text, never run as a formula


def test_report_lists_flagged_submissions_by_kind(course: Course) -> None:
    _, html_path = write_report(course)
    page = html_path.read_text()
    assert page.count('src="data:image/png;base64,') == 3
    assert "<script" not in page and HIDDEN not in page and SOLUTION not in page
    assert "&lt;script&gt;" in page

    flagged = _section(page, "Flagged submissions")
    grader = _section(flagged, "A grader failed (grader_error)", "h3")
    assert "Set-up problem: yours to fix, not shown to learners." in grader
    assert _row(grader, "cy") == (f"<tr><td>cy</td><td>01-brief</td><td>check-brief</td><td class=num>0 / 3</td>"
                                  f"<td>{escape(GRADER_DETAIL)}</td></tr>")
    assert GRADER_DETAIL not in _section(flagged, "Ran out of memory (memory)", "h3")  # set-up detail stays apart
    assert "<td>ben</td><td>02-segments</td>" in _section(flagged, "The notebook file is damaged (corrupt_notebook)",
                                                          "h3")
    assert "<td>dan</td><td>01-brief</td><td>check-brief</td>" in _section(flagged, "A check cell was changed", "h3")
    assert "Note, not counted" in _section(flagged, "A cell was copied (duplicate_cell)", "h3")
    assert "<td>dan</td><td>02-segments</td>" in _section(flagged, "Not submitted (not_submitted)", "h3")
    assert "ana" not in flagged

    risk = _section(page, "Learners at risk")
    assert "could not be marked" in _row(risk, "ben") and "average 17%" in _row(risk, "ben")
    assert "edited_tests" in _row(risk, "dan")
    assert ">ana<" not in risk and ">cy<" not in risk

    pending = _section(page, "Awaiting hand marking")
    assert _row(pending, "ben") == "<tr><td>ben</td><td>01-brief</td><td>Reflect vendor</td><td class=num>3</td></tr>"
    assert ">ana<" not in pending

    checks = _section(page, "Which checks were missed")
    assert f"<td>01-brief</td><td>{OBJECTIVE}</td><td>check-objective</td><td class=num>1</td><td class=num>6</td>" \
        in checks
    # cy's check-brief failed on the course's side: it does not count against the learner
    assert "<td>01-brief</td><td>Brief</td><td>check-brief</td><td class=num>1</td><td class=num>5</td>" in checks

    usage = _section(page, "Model usage and cost")
    assert "$0.0375" in _row(usage, "ana") and ">8<" in _row(usage, "ana")
    assert "no usage recorded" in _row(usage, "cy")
    assert "usage file unreadable" in _row(usage, "ben") and "not valid JSON" in _row(usage, "ben")
    assert "+ unknown" in _row(usage, "dan")


# ---- usage files -----------------------------------------------------------------------------


def test_export_usage_round_trips_with_exact_sums(tmp_path: Path) -> None:
    db = tmp_path / "usage.sqlite"
    calls = [("openai", "gpt-4o-mini", 200, 120, 30, None), ("openai", "gpt-4o-mini", 200, 80, 15, None),
             ("openai", "gpt-4o-mini", 429, None, None, "rate_limit"),
             ("local", "smollm2-135m-instruct", 200, 40, 10, None), ("openai", "mystery-model", 200, 5, 5, None)]
    for backend, model, status, prompt, completion, error in calls:
        ledger.record(backend=backend, model=model, endpoint="/chat/completions", status=status,
                      prompt_tokens=prompt, completion_tokens=completion, latency_ms=12.0, error=error, path=db)
    target = tmp_path / "lab" / USAGE_FILE
    written = ledger.export_usage(target, ledger=db)
    models = ledger.read_usage(target)
    assert models == written["models"]
    by_model = {m["model"]: m for m in models}
    mini = by_model["gpt-4o-mini"]
    assert (mini["calls"], mini["prompt_tokens"], mini["completion_tokens"], mini["errors"]) == (3, 200, 45, 1)
    assert mini["cost_usd"] == pytest.approx((200 * 0.15 + 45 * 0.60) / 1e6)
    assert by_model["smollm2-135m-instruct"] == {"backend": "local", "model": "smollm2-135m-instruct", "calls": 1,
                                                  "prompt_tokens": 40, "completion_tokens": 10, "cost_usd": 0.0,
                                                  "errors": 0}
    assert by_model["mystery-model"]["cost_usd"] is None
    assert set(json.loads(target.read_text())) == {"exported_at", "since", "models"}

    later = ledger.export_usage(target, since=datetime.now(timezone.utc) + timedelta(minutes=1), ledger=db)
    assert later["models"] == [] and ledger.read_usage(target) == []
    earlier = ledger.export_usage(target, since=datetime.now() - timedelta(days=1), ledger=db)
    assert sum(m["calls"] for m in earlier["models"]) == 5


@pytest.mark.parametrize(("content", "message"), [
    ('{"models": [', "not valid JSON"),
    ('{"exported_at": "2026-11-23T09:00:00Z"}', "models: Field required"),
    ('{"exported_at": "2026-11-23T09:00:00Z", "models": [{"backend": "openai", "model": "m", "calls": "many", '
     '"prompt_tokens": 1, "completion_tokens": 1, "cost_usd": 0, "errors": 0}]}', "models.0.calls"),
    ('{"exported_at": "2026-11-23T09:00:00Z", "models": [{"backend": "openai", "model": "m", "calls": 1, '
     '"prompt_tokens": -5, "completion_tokens": 1, "cost_usd": 0, "errors": 0}]}', "models.0.prompt_tokens"),
    ('[1, 2]', "not a valid usage file"),
])
def test_read_usage_rejects_bad_files_with_a_clear_message(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / USAGE_FILE
    path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(message)):
        ledger.read_usage(path)
