"""Lab 5 through real nbgrader: the solution passes, the student version fails, expert scores stay with the grader."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest

from marketlab import commission, data
from marketlab.checks import CheckFailed, lab05
from tests.support.lab_notebook import assert_validates, graders, stored_kinds
from tests.support.local_submission import LocalSubmission

LAB = Path(__file__).resolve().parent.parent / "labs" / "05-commission"
EXERCISES = (("hand-scores", "check-hand-scores"), ("extraction", "check-extraction"), ("rules", "check-rules"),
             ("commission-brief", "check-brief"), ("vendor-questions", "check-questions"))
# nbgrader's stub, at the top level or indented inside a function (as in `rules`, edit one line)
STUB = re.compile(r"^[ \t]*# YOUR CODE HERE\n[ \t]*raise NotImplementedError\(\)\n?", re.M)
# Cells that define what a check needs: run after the answer cell, before its check.
FOLLOW_UPS = {"rules": ("my-scorecard",), "commission-brief": ("lint-brief",)}


def _notebook() -> nbformat.NotebookNode:
    return nbformat.read(LAB / "05-commission.ipynb", as_version=4)


def _meta(cell: Any) -> dict[str, Any]:
    return cell.metadata.get("nbgrader", {})


def _graders() -> Any:
    return graders(LAB)


def test_lab05_is_stored_clean_with_correct_metadata() -> None:
    kinds = stored_kinds(LAB)
    assert kinds["test"] == [check for _, check in EXERCISES] + ["check-artifacts"]
    assert kinds["answer"] == [answer for answer, _ in EXERCISES]
    assert kinds["manual"] == ["reflect-commission"]


@pytest.fixture(autouse=True)
def _scripted_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lab's cells run as written; the environment picks the scripted model, as autograding does."""
    monkeypatch.setenv("MARKETLAB_BACKEND", "scripted")


def _namespace(cells: dict[str, str]) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(cells["setup"], namespace)
    return namespace


def _run_exercises(cells: dict[str, str], namespace: dict[str, Any], *, starting: bool) -> None:
    for answer, check in EXERCISES:
        source = cells[answer]
        if starting:  # the learner edits nothing but deletes the two stub lines
            source = STUB.sub("", source)
        exec(source, namespace)
        for follow_up in FOLLOW_UPS.get(answer, ()):
            exec(cells[follow_up].replace("commissioned.lint()", ""), namespace)
        visible_check = cells[check].split("\n### BEGIN HIDDEN TESTS")[0]
        if starting:
            with pytest.raises((CheckFailed, NotImplementedError)):
                exec(visible_check, namespace)
        else:
            exec(visible_check, namespace)  # raises CheckFailed on a failure


def test_lab05_starting_text_of_each_exercise_fails_its_check() -> None:
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

    nb, _ = ClearSolutions().preprocess(_notebook(), {})
    nb, _ = ClearHiddenTests().preprocess(nb, {})
    cells = {_meta(c)["grade_id"]: c.source for c in nb.cells}
    _run_exercises(cells, _namespace(cells), starting=True)


def test_lab05_solutions_pass_their_checks_on_the_lab_data() -> None:
    cells = {_meta(c)["grade_id"]: c.source for c in _notebook().cells}
    _run_exercises(cells, _namespace(cells), starting=False)


def test_lab05_rules_are_one_line_to_change_and_counts_or_any_rate_fail() -> None:
    """The monitoring line as given (counts earn a 2) fails, on the lab's proposals and the holdout's."""
    cells = {_meta(c)["grade_id"]: c.source for c in _notebook().cells}
    namespace = _namespace(cells)
    cell = cells["rules"]
    region = re.compile(r"^[ \t]*### BEGIN SOLUTION\n(.*?)\n[ \t]*### END SOLUTION\n", re.M | re.S)
    assert len(region.search(cell).group(1).splitlines()) == 1
    given = next(line for line in cell.splitlines() if "<- change this line" in line)
    assert "earns_2 = " in given
    grade = _graders().GRADERS["check-rules"]
    for line in (given, "    earns_2 = bool(watch.service_metrics or watch.counts_only)"):
        exec(region.sub("", cell).replace(given, line), namespace)
        exec(cells["my-scorecard"], namespace)
        with pytest.raises(CheckFailed):
            exec(cells["check-rules"].split("\n### BEGIN HIDDEN TESTS")[0], namespace)
        if line == given:
            assert not grade(LocalSubmission(namespace)).passed
    exec(cell, namespace)
    exec(cells["my-scorecard"], namespace)
    exec(cells["check-rules"].split("\n### BEGIN HIDDEN TESTS")[0], namespace)
    assert grade(LocalSubmission(namespace)).passed


def _solution_namespace() -> dict[str, Any]:
    cells = {_meta(c)["grade_id"]: c.source for c in _notebook().cells}
    namespace = _namespace(cells)
    for answer, _check in EXERCISES:
        exec(cells[answer], namespace)
        for follow_up in FOLLOW_UPS.get(answer, ()):
            exec(cells[follow_up].replace("commissioned.lint()", ""), namespace)
    return namespace


def test_graders_pass_the_solution_on_holdout_proposals_and_never_send_expert_scores() -> None:
    namespace = _solution_namespace()
    seen: list[Any] = []
    for name in ("extraction_messages", "my_scorecard"):
        honest = namespace[name]

        def spy(arg: Any, _honest: Any = honest) -> Any:
            seen.append(arg)
            return _honest(arg)

        namespace[name] = spy
    graders = _graders()
    submission = LocalSubmission(namespace)
    for grade_id in ("check-hand-scores", "check-extraction", "check-rules", "check-brief", "check-questions"):
        result = graders.GRADERS[grade_id](submission)
        assert result.passed, result.text()
    records = [s for s in seen if "question_text" in s]
    extractions = [s for s in seen if "question_text" not in s]
    assert {r["proposal_id"] for r in records} == {"H1", "H2"} and len(records) == 10
    assert all(set(r) == {"proposal_id", "vendor", "text", "question", "question_text"} for r in records)
    assert extractions and sorted(extractions[0]) == ["H1", "H2"]
    sent = repr(seen)
    for justification in data.load("scorecard", directory=graders.HOLDOUT_DIR)["justification"]:
        assert justification not in sent


def test_rules_that_hard_code_the_lab_s_proposals_fail_on_the_holdout() -> None:
    expert = data.load("scorecard")
    by_text = {(p, q): s for p, q, s in zip(expert["proposal_id"], expert["question"], expert["score"])}
    answers_to_id = {a.training_data.evidence: pid for pid, a in commission.load_extractions().items()}

    def memorised(a: commission.ProposalAnswers) -> dict[str, int]:
        pid = answers_to_id.get(a.training_data.evidence)
        return {q: int(by_text.get((pid, q), 0)) for q in commission.QUESTION_IDS}

    def my_scorecard(extractions: Any) -> pd.DataFrame:
        return commission.score(extractions, memorised)

    assert lab05.check_scoring_rules(my_scorecard, commission.load_extractions(), expert, strict=False, quiet=True)
    graded = _graders().grade_scoring_rules(LocalSubmission({"my_scorecard": my_scorecard}))
    assert not graded.passed and "clear-cut" in graded.problems[0]


def test_messages_without_the_proposal_text_fail_the_extraction_check() -> None:
    def extraction_messages(record: dict[str, Any]) -> list[dict[str, str]]:
        return [{"role": "system", "content": "Use only the proposal. Copy the evidence word for word; if it does "
                                              "not answer, write 'not stated'."},
                {"role": "user", "content": f"{record['question_text']}\n\n{record['text'][:200]}"}]

    graded = _graders().grade_extraction(LocalSubmission({"extraction_messages": extraction_messages}))
    assert not graded.passed
    assert any("whole proposal text" in p for p in graded.problems)


@pytest.mark.slow
@pytest.mark.nbgrader
def test_lab05_validates_through_nbgrader(tmp_path: Path) -> None:
    assert_validates(LAB, tmp_path, 11, ["reflect-commission"])
