"""Learner feedback, cohort report and usage files, on a small fake course with a real nbgrader gradebook."""

from __future__ import annotations

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
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbgrader.api import Gradebook

from marketlab.course.feedback import write_feedback
from marketlab.course.layout import GRADING_RECORD, SETTINGS_FILE, USAGE_FILE, Course
from marketlab.course.report import write_report
from marketlab.llm import ledger

# nbgrader's own add_submission warns about SQLAlchemy autoflush while the fake gradebook is filled
pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")

HIDDEN = "HIDDEN-TEST-MARKER-7731"
SOLUTION = "SOLUTION-MARKER-5190"
HOSTILE_ERROR = "CheckFailed: the brief has no acceptance tests. <script>alert('pwned')</script>"
MEMORY_DETAIL = "Your notebook ran out of memory in cell 'objective' (limit 1 GB)."
CORRUPT_REASON = "Your notebook file could not be read: it is not valid JSON."

# lab -> grade cell -> (max_score, cell_type); markdown cells are marked by the instructor
LABS: dict[str, dict[str, tuple[float, str]]] = {
    "01-brief": {"check-objective": (1.0, "code"), "check-brief": (2.0, "code"),
                 "reflect-vendor": (3.0, "markdown")},
    "02-segments": {"check-segments": (2.0, "code"), "check-size": (2.0, "code")},
}
# (student, lab) -> grade cell -> (auto_score, manual_score); ben's 02 is not in the gradebook at all
SCORES: dict[tuple[str, str], dict[str, tuple[float | None, float | None]]] = {
    ("ana", "01-brief"): {"check-objective": (1.0, None), "check-brief": (2.0, None), "reflect-vendor": (None, 3.0)},
    ("ana", "02-segments"): {"check-segments": (2.0, None), "check-size": (2.0, None)},
    ("ben", "01-brief"): {"check-objective": (1.0, None), "check-brief": (0.0, None), "reflect-vendor": (None, None)},
    ("cy", "01-brief"): {"check-objective": (0.0, None), "check-brief": (2.0, None), "reflect-vendor": (None, 2.0)},
    ("cy", "02-segments"): {"check-segments": (2.0, None), "check-size": (2.0, None)},
    ("dan", "01-brief"): {"check-objective": (1.0, None), "check-brief": (2.0, None), "reflect-vendor": (None, 3.0)},
    ("dan", "02-segments"): {"check-segments": (2.0, None), "check-size": (2.0, None)},
}


def _source_notebook(lab: str) -> nbformat.NotebookNode:
    cells = [new_markdown_cell(f"# {lab}")]
    for name, (max_score, cell_type) in LABS[lab].items():
        meta = {"nbgrader": {"grade": True, "grade_id": name, "points": max_score, "locked": cell_type == "code",
                             "solution": cell_type == "markdown", "schema_version": 3}}
        if cell_type == "code":
            cells.append(new_code_cell(f"### BEGIN HIDDEN TESTS\nassert '{HIDDEN}'\n### END HIDDEN TESTS",
                                       metadata=meta))
        else:
            cells.append(new_markdown_cell(f"### BEGIN SOLUTION\n{SOLUTION}\n### END SOLUTION", metadata=meta))
    return new_notebook(cells=cells)


def _cell(lab: str, name: str, score: float | None, error: str | None = None) -> dict[str, Any]:
    max_score, cell_type = LABS[lab][name]
    return {"notebook": lab, "score": score, "max_score": max_score, "autograded": cell_type == "code",
            "error": error}


def _record(student: str, lab: str, **extra: Any) -> dict[str, Any]:
    scores = SCORES.get((student, lab), {})
    cells = {name: _cell(lab, name, scores.get(name, (0.0, None))[0]) for name in LABS[lab]}
    record = {"student": student, "lab": lab, "status": "graded", "reason": "", "problems": [],
              "score": sum(c["score"] or 0.0 for c in cells.values() if c["autograded"]),
              "max_score": sum(c["max_score"] for c in cells.values() if c["autograded"]),
              "seconds": 1.5, "graded_at": "2026-11-23T10:00:00+00:00", "cells": cells}
    record.update(extra)
    return record


def _usage(cost: float | None, calls: int = 3) -> dict[str, Any]:
    return {"exported_at": "2026-11-23T09:00:00+00:00", "since": None, "models": [
        {"backend": "openai", "model": "gpt-4o-mini", "calls": calls, "prompt_tokens": 1000,
         "completion_tokens": 200, "cost_usd": cost, "errors": 0}]}


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _fill_gradebook(url: str) -> None:
    with Gradebook(url, course_id="marketlab") as gb:
        for lab, cells in LABS.items():
            gb.add_assignment(lab)
            gb.update_or_create_notebook(lab, lab)
            for name, (max_score, cell_type) in cells.items():
                gb.update_or_create_grade_cell(name, lab, lab, max_score=max_score, cell_type=cell_type)
        for student in sorted({s for s, _ in SCORES} | {"ben"}):
            gb.add_student(student)
        for (student, lab), scores in SCORES.items():
            submission = gb.update_or_create_submission(lab, student)
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    grade.auto_score, grade.manual_score = scores[grade.name]
                    grade.needs_manual_grade = scores[grade.name] == (None, None)
            gb.db.commit()


@pytest.fixture
def course(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Course:
    monkeypatch.delenv("MARKETLAB_GRADEBOOK_URL", raising=False)
    # nbgrader runs the `alembic` command for a new gradebook: find it beside this Python
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    root = tmp_path / "course"
    url = f"sqlite:///{root / 'gradebook.db'}"
    _write_json(root / SETTINGS_FILE, {"course_id": "marketlab", "labs_dir": str(tmp_path / "labs"), "db_url": url})
    for lab in LABS:
        (root / "source" / lab).mkdir(parents=True)
        nbformat.write(_source_notebook(lab), root / "source" / lab / f"{lab}.ipynb")
    _fill_gradebook(url)

    records = {
        ("ana", "01-brief"): _record("ana", "01-brief"),
        ("ana", "02-segments"): _record("ana", "02-segments"),
        ("ben", "01-brief"): _record("ben", "01-brief", reason="One check did not pass.", cells={
            **_record("ben", "01-brief")["cells"],
            "check-brief": _cell("01-brief", "check-brief", 0.0, HOSTILE_ERROR)}),
        ("ben", "02-segments"): _record("ben", "02-segments", status="failed", reason=CORRUPT_REASON,
                                        score=0.0, cells={}, problems=[
                                            {"kind": "corrupt_notebook", "detail": CORRUPT_REASON, "cell": ""}]),
        ("cy", "01-brief"): _record("cy", "01-brief", reason="Your notebook ran out of memory.", problems=[
            {"kind": "memory", "detail": MEMORY_DETAIL, "cell": "objective"}], cells={
            **_record("cy", "01-brief")["cells"],
            "check-objective": _cell("01-brief", "check-objective", 0.0, "MemoryError: ")}),
        ("cy", "02-segments"): _record("cy", "02-segments"),
        ("dan", "01-brief"): _record("dan", "01-brief", problems=[
            {"kind": "edited_tests", "detail": "The check cell 'check-brief' was changed.", "cell": "check-brief"}]),
        ("dan", "02-segments"): _record("dan", "02-segments"),
    }
    for (student, lab), record in records.items():
        (root / "submitted" / student / lab).mkdir(parents=True)
        (root / "submitted" / student / lab / f"{lab}.ipynb").write_text("{}")
        _write_json(root / "autograded" / student / lab / GRADING_RECORD, record)
    _write_json(root / "submitted" / "ana" / "01-brief" / USAGE_FILE, _usage(0.0125))
    _write_json(root / "submitted" / "ana" / "02-segments" / USAGE_FILE, _usage(0.025, calls=5))
    (root / "submitted" / "ben" / "01-brief" / USAGE_FILE).write_text('{"models": [ {"calls": 3,')
    _write_json(root / "submitted" / "dan" / "01-brief" / USAGE_FILE, _usage(None))
    return Course(root)


def _section(page: str, title: str) -> str:
    start = page.index(f"<h2>{title}</h2>")
    end = page.find("<h2>", start + 1)
    return page[start:end if end != -1 else None]


def _row(section: str, first_cell: str) -> str:
    match = re.search(rf"<tr><td[^>]*>{re.escape(first_cell)}</td>.*?</tr>", section)
    assert match, f"no row for {first_cell}"
    return match.group(0)


# ---- feedback --------------------------------------------------------------------------------


def test_feedback_gives_reasons_escapes_and_never_shows_tests(course: Course) -> None:
    paths = write_feedback(course)
    assert paths == [course.root / "feedback" / s / "index.html" for s in ("ana", "ben", "cy", "dan")]
    pages = {p.parent.name: p.read_text() for p in paths}
    for text in pages.values():
        assert HIDDEN not in text and SOLUTION not in text and "BEGIN HIDDEN" not in text
        assert "<script" not in text

    ben = pages["ben"]
    assert "CheckFailed: the brief has no acceptance tests." in ben
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in ben
    brief = _section(ben, "01-brief")
    assert "1 / 6 points" in brief and "Not passed" in brief and "Marked by your instructor" in brief
    segments = _section(ben, "02-segments")
    assert "0 / 4 points" in segments and "Could not be marked" in segments
    assert CORRUPT_REASON in segments

    cy = pages["cy"]
    assert "Ran out of memory: Your notebook ran out of memory in cell &#x27;objective&#x27;" in cy
    assert "MemoryError" in cy and "4 / 6 points" in cy
    assert "6 / 6 points" in pages["ana"] and "Not passed" not in pages["ana"]


def test_feedback_refuses_a_student_id_outside_the_folder(course: Course) -> None:
    with pytest.raises(ValueError, match="not a valid student id"):
        write_feedback(course, ["../ana"])


# ---- report ----------------------------------------------------------------------------------


def test_grades_csv_has_exact_scores(course: Course) -> None:
    csv_path, _ = write_report(course)
    frame = pd.read_csv(csv_path).set_index(["student", "lab"])
    assert list(frame.columns[:5]) == ["score", "max_score", "percent", "status", "reason"]
    assert len(frame) == 8
    assert frame.loc[("ana", "01-brief"), ["score", "max_score", "percent"]].tolist() == [6.0, 6.0, 100.0]
    assert frame.loc[("ben", "01-brief"), "score"] == 1.0
    assert frame.loc[("ben", "01-brief"), "01-brief:check-brief"] == 0.0
    assert pd.isna(frame.loc[("ben", "01-brief"), "01-brief:reflect-vendor"])  # not marked yet
    assert frame.loc[("ben", "02-segments"), ["score", "max_score", "status"]].tolist() == [0.0, 4.0, "failed"]
    assert frame.loc[("ben", "02-segments"), "reason"] == CORRUPT_REASON
    assert frame.loc[("cy", "01-brief"), ["score", "percent"]].tolist() == [4.0, 66.7]
    assert frame.loc[("cy", "01-brief"), "01-brief:check-objective"] == 0.0
    assert frame.loc[("dan", "02-segments"), "02-segments:check-size"] == 2.0


def test_report_html_flags_risk_usage_problems_and_embeds_plots(course: Course) -> None:
    _, html_path = write_report(course)
    page = html_path.read_text()
    assert page.count('src="data:image/png;base64,') == 3
    assert "<script" not in page and HIDDEN not in page

    risk = _section(page, "Learners at risk")
    assert "ben" in risk and "could not be marked" in risk and "average 8%" in risk
    assert "dan" in risk and "edited_tests" in risk
    assert ">ana<" not in risk and ">cy<" not in risk

    usage = _section(page, "Model usage and cost")
    assert "$0.0375" in _row(usage, "ana") and ">8<" in _row(usage, "ana")
    assert "no usage recorded" in _row(usage, "cy")
    ben = _row(usage, "ben")
    assert "usage file unreadable" in ben and "not valid JSON" in ben
    assert "+ unknown" in _row(usage, "dan")

    problems = _section(page, "Problems while grading")
    assert "Your notebook ran out of memory in cell &#x27;objective&#x27;" in problems
    assert "The notebook file is damaged (corrupt_notebook)" in problems
    assert "The check cells were changed (edited_tests)" in problems

    checks = _section(page, "Which checks were missed")
    assert re.search(r"<td>01-brief</td><td>check-objective</td><td class=num>1</td><td class=num>4</td>", checks)


# ---- usage files -----------------------------------------------------------------------------


def test_export_usage_round_trips_with_exact_sums(tmp_path: Path) -> None:
    db = tmp_path / "usage.sqlite"
    calls = [("openai", "gpt-4o-mini", 200, 120, 30, None), ("openai", "gpt-4o-mini", 200, 80, 15, None),
             ("openai", "gpt-4o-mini", 429, None, None, "rate_limit_exceeded"),
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
