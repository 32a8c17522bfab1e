"""Lab 4 through real nbgrader: the solution passes, the student version fails, truths stay with the grader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest

from marketlab import data
from marketlab.checks import CheckFailed, lab04
from tests.support.lab_notebook import assert_validates, graders, meta, notebook, stored_kinds
from tests.support.local_submission import LocalSubmission

LAB = Path(__file__).resolve().parent.parent / "labs" / "04-monitor"
EXERCISES = (("weekly-rate", "check-rate"), ("decline-began", "check-decline"), ("growing-segment", "check-segment"),
             ("rules", "check-rules"), ("workflow-rules", "check-workflow-rules"))
AFTER = {"rules": "monitor-function", "workflow-rules": "monitor-workflow-function"}


def _notebook() -> nbformat.NotebookNode:
    return notebook(LAB)


def _graders() -> Any:
    return graders(LAB)


def test_lab04_is_stored_clean_with_correct_metadata() -> None:
    kinds = stored_kinds(LAB)
    assert kinds["test"] == [check for _, check in EXERCISES] + ["check-monitor"]
    assert kinds["answer"] == [answer for answer, _ in EXERCISES]
    assert kinds["manual"] == ["reflect-owner"]


def _without_display(source: str) -> str:
    """The cell without its last line (a table shown to the learner)."""
    return "\n".join(source.splitlines()[:-1])


def _starting_namespace(cells: dict[str, str]) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    setup = cells["setup"]
    exec(setup, namespace)
    return namespace


def test_lab04_starting_text_of_each_exercise_fails_its_check() -> None:
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

    nb, _ = ClearSolutions().preprocess(_notebook(), {})
    nb, _ = ClearHiddenTests().preprocess(nb, {})
    cells = {meta(c)["grade_id"]: c.source for c in nb.cells}
    namespace = _starting_namespace(cells)
    for answer, check in EXERCISES:
        # the learner edits nothing but deletes the two stub lines
        exec(cells[answer].replace("# YOUR CODE HERE\nraise NotImplementedError()", ""), namespace)
        if answer in AFTER:
            exec(_without_display(cells[AFTER[answer]]), namespace)
        if answer == "rules":
            exec(cells["workflow-runs"], namespace)
        visible_check = cells[check].split("\n")[0]  # the check line alone (the next lines use its inputs)
        with pytest.raises((CheckFailed, NotImplementedError)):
            exec(visible_check, namespace)


def test_lab04_solutions_pass_their_checks_on_the_lab_data() -> None:
    cells = {meta(c)["grade_id"]: c.source for c in _notebook().cells}
    namespace = _starting_namespace(cells)
    for answer, check in EXERCISES:
        exec(cells[answer], namespace)
        if answer in AFTER:
            exec(_without_display(cells[AFTER[answer]]), namespace)
        if answer == "rules":
            exec(cells["workflow-runs"], namespace)
        exec(cells[check].split("\n")[0], namespace)  # raises CheckFailed on a failure


def test_lab04_rules_are_one_line_each_and_a_wrong_line_fails_the_check_and_the_grader() -> None:
    """Exercises 4 and 5 change one line; as given, or plainly wrong, the check and the grader fail."""
    import re

    region = re.compile(r"^### BEGIN SOLUTION\n(.*?)\n### END SOLUTION\n", re.M)
    cells = {meta(c)["grade_id"]: c.source for c in _notebook().cells}
    namespace = _starting_namespace(cells)
    exec(cells["workflow-runs"], namespace)
    graders = _graders()
    for answer, after, check, grade, wrongs in (
            ("rules", "monitor-function", "check-rules", graders.grade_rules,
             ["SHARP_DROP = Trigger.at_level(0.99)"]),  # fires at once, on the stable shop too
            ("workflow-rules", "monitor-workflow-function", "check-workflow-rules", graders.grade_workflow_rules,
             [])):  # the line as given is the plainly wrong answer: nobody retrains a rented model
        cell = cells[answer]
        assert len(region.search(cell).group(1).splitlines()) == 1, f"{answer}: the solution is one line"
        given = cell.splitlines()[0]
        assert "<- change this line" in given
        for line in [given, *wrongs]:
            exec(region.sub("", cell).replace(given, line), namespace)
            exec(_without_display(cells[after]), namespace)
            with pytest.raises(CheckFailed):
                exec(cells[check].split("\n")[0], namespace)
            assert not grade(LocalSubmission(namespace)).passed, f"{answer}: {line}"
        exec(cell, namespace)
        exec(_without_display(cells[after]), namespace)
        exec(cells[check].split("\n")[0], namespace)
        assert grade(LocalSubmission(namespace)).passed


def test_graders_judge_the_holdout_series_and_send_only_tables() -> None:
    seen: list[pd.DataFrame] = []
    cells = {meta(c)["grade_id"]: c.source for c in _notebook().cells}
    namespace = _starting_namespace(cells)
    exec(cells["rules"], namespace)
    exec(cells["monitor-function"], namespace)
    honest = namespace["monitor"]

    def monitor(weekly_df: pd.DataFrame) -> pd.DataFrame:
        seen.append(weekly_df)
        return honest(weekly_df)

    namespace["monitor"] = monitor
    result = _graders().grade_rules(LocalSubmission(namespace))
    assert result.passed, result.text()
    assert len(seen) == 2 and str(seen[0]["week_start"].min())[:10] == "2021-01-04", "the holdout, not the lab"


def test_a_rule_that_fires_on_one_bad_week_fails_on_the_stable_holdout() -> None:
    from marketlab.monitor import AlertRule, Trigger, run_monitor

    rules = [AlertRule("One week", "effectiveness_rate", Trigger.outside_limits(), owner="Owner", action="review"),
             AlertRule("Run", "effectiveness_rate", Trigger.run(weeks=8), owner="Owner", action="retrain")]
    namespace = {"monitor": lambda weekly: run_monitor(weekly, rules).alerts_table(), "RULE_COUNT": 2}
    result = _graders().grade_rules(LocalSubmission(namespace))
    assert not result.passed
    assert any("where nothing changed" in p for p in result.problems), result.problems


def test_an_alert_without_an_owner_fails() -> None:
    changed = data.load("campaign_weekly")
    stable = data.load("campaign_weekly_stable")
    from marketlab.monitor import run_monitor

    def ownerless(weekly: pd.DataFrame) -> pd.DataFrame:
        return run_monitor(weekly).alerts_table().assign(owner="")

    result = lab04.check_rules(ownerless, changed, stable, rule_count=3, strict=False, quiet=True)
    assert not result.passed and any("no owner" in p for p in result.problems)


@pytest.mark.slow
@pytest.mark.nbgrader
def test_lab04_validates_through_nbgrader(tmp_path: Path) -> None:
    assert_validates(LAB, tmp_path, 10, ["reflect-owner"])


def test_a_segment_without_its_share_prefix_is_told_to_add_the_prefix() -> None:
    weekly = data.load("campaign_weekly")
    bare = lab04.check_segment("trail_runners", weekly, strict=False, quiet=True)
    assert not bare.passed
    assert bare.problems == ["'trail_runners' is the right group, but the column's name is 'share_trail_runners': "
                             "add the 'share_' prefix"]
    wrong = lab04.check_segment("weekend_hikers", weekly, strict=False, quiet=True)
    assert not wrong.passed and "not the biggest change" in wrong.problems[0]
    assert lab04.check_segment("share_trail_runners", weekly, strict=False, quiet=True).passed
