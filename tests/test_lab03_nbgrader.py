"""Lab 3 through real nbgrader: the solution passes, the student version fails, labels never reach the learner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest

from marketlab import data
from marketlab.checks import CheckFailed, lab03
from marketlab.course import validate_lab
from tests.support.lab_notebook import graders, meta, notebook, stored_kinds
from tests.support.local_submission import LocalSubmission

LAB = Path(__file__).resolve().parent.parent / "labs" / "03-evaluate"
EXERCISES = (("my-labels", "check-labels"), ("tone-policy", "check-policy"), ("choose-checks", "check-checks"),
             ("ok-but-unfaithful", "check-ok-but-unfaithful"), ("agreement-and-kappa", "check-agreement"),
             ("trust-judge", "check-trust"), ("acceptance", "check-verdict"))
LABEL_COLUMNS = {"human_rating", "rater_id", "unsupported_claim", "banned_word", "over_length",
                 "missing_required_fact", "wrong_tone", "repetition"}


def _notebook() -> nbformat.NotebookNode:
    return notebook(LAB)


def _graders() -> Any:
    return graders(LAB)


def test_lab03_is_stored_clean_with_correct_metadata() -> None:
    kinds = stored_kinds(LAB)
    assert kinds["test"] == [check for _, check in EXERCISES] + ["check-evaluator"]
    assert kinds["answer"] == [answer for answer, _ in EXERCISES]
    assert kinds["manual"] == ["reflect-publish"]


def _starting_namespace(cells: dict[str, str]) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    setup = cells["setup"].replace("client = llm.client()", "client = None").replace(
        "MODEL = llm.model_name()", "MODEL = 'scripted'")
    exec(setup, namespace)
    exec(cells["show-ten"].replace("print(", "str("), namespace)
    return namespace


def test_lab03_starting_text_of_each_exercise_fails_its_check() -> None:
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

    nb, _ = ClearSolutions().preprocess(_notebook(), {})
    nb, _ = ClearHiddenTests().preprocess(nb, {})
    cells = {meta(c)["grade_id"]: c.source for c in nb.cells}
    namespace = _starting_namespace(cells)
    for answer, check in EXERCISES:
        # the learner edits nothing but deletes the two stub lines
        exec(cells[answer].replace("# YOUR CODE HERE\nraise NotImplementedError()", ""), namespace)
        if answer == "choose-checks":
            exec(cells["my-evaluate"], namespace)
        visible_check = cells[check].split("\n")[0]  # the check line alone (the next lines use its inputs)
        with pytest.raises((CheckFailed, NotImplementedError)):
            exec(visible_check, namespace)


def test_lab03_solutions_pass_their_checks_on_the_lab_data() -> None:
    cells = {meta(c)["grade_id"]: c.source for c in _notebook().cells}
    namespace = _starting_namespace(cells)
    for answer, check in EXERCISES:
        exec(cells[answer], namespace)
        if answer == "choose-checks":
            exec(cells["my-evaluate"], namespace)
        exec(cells[check].split("\n")[0], namespace)  # raises CheckFailed on a failure


def test_graders_send_texts_but_never_labels_to_the_learners_side() -> None:
    seen: list[pd.DataFrame] = []
    cells = {meta(c)["grade_id"]: c.source for c in _notebook().cells}
    namespace = _starting_namespace(cells)
    exec(cells["choose-checks"], namespace)
    exec(cells["my-evaluate"], namespace)
    honest = namespace["my_evaluate"]

    def my_evaluate(outputs: pd.DataFrame, products: pd.DataFrame) -> pd.DataFrame:
        seen.append(outputs)
        return honest(outputs, products)

    namespace["my_evaluate"] = my_evaluate
    result = _graders().grade_checks(LocalSubmission(namespace))
    assert result.passed, result.text()
    assert seen and not LABEL_COLUMNS & set(seen[0].columns)
    assert set(seen[0]["sku"]).isdisjoint(set(data.load("products")["sku"])), "holdout texts, not the lab's"


def test_a_check_that_flags_everything_fails_on_precision() -> None:
    rated = data.load("rated_outputs", directory=LAB.parents[1] / "graders" / "holdout")
    from marketlab import evaluate

    results = evaluate.run_checks(lab03.outputs_only(rated), data.load("products", directory=LAB.parents[1] / "graders" / "holdout"))
    results["faithfulness"] = False  # cries wolf on every text
    check = lab03.check_checks(results, rated, dict(evaluate.DEFECT_CHECKS), strict=False, quiet=True)
    assert not check.passed
    assert any("unsupported_claim" in p and "precision" in p for p in check.problems)


@pytest.mark.slow
def test_lab03_validates_through_nbgrader(tmp_path: Path) -> None:
    files_before = sorted(p.name for p in LAB.iterdir())
    result = validate_lab(LAB, workdir=tmp_path / "course", backend="scripted")
    assert result.ok, result.summary()
    autograded = [s for s in result.solution_scores if s.autograded]
    assert sum(s.max_score for s in autograded) == 13 and all(s.full for s in autograded)
    assert all(s.score == 0 for s in result.student_scores if s.autograded)
    assert [s.grade_id for s in result.solution_scores if not s.autograded] == ["reflect-publish"]
    released = (tmp_path / "course" / "release" / LAB.name / f"{LAB.name}.ipynb").read_text()
    assert "graders" not in released and "BEGIN SOLUTION" not in released
    assert sorted(p.name for p in LAB.iterdir()) == files_before
