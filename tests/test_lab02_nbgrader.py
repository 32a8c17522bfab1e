"""Lab 2 through real nbgrader: the solution passes, the student version fails, nothing leaks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

from marketlab.checks import CheckFailed
from tests.support.lab_notebook import assert_validates

LAB = Path(__file__).resolve().parent.parent / "labs" / "02-workflow"
# nbgrader's stub, at the top level or indented inside a class or function (the edit-one-line cells)
STUB = re.compile(r"^[ \t]*# YOUR CODE HERE\n[ \t]*raise NotImplementedError\(\)\n?", re.M)
EXERCISES = (("schema", "check-schema"), ("rules", "check-rules"), ("weekly-cost", "check-weekly-cost"))


def _notebook() -> nbformat.NotebookNode:
    return nbformat.read(LAB / "02-workflow.ipynb", as_version=4)


def _meta(cell: Any) -> dict[str, Any]:
    return cell.metadata.get("nbgrader", {})


def test_lab02_is_stored_clean_with_correct_metadata() -> None:
    nb = _notebook()
    nbformat.validate(nb)
    assert re.search(r"\*\*Time: about \d+ minutes", nb.cells[0].source)
    ids = [_meta(c)["grade_id"] for c in nb.cells]
    assert all(ids) and len(ids) == len(set(ids)), "every cell has a unique grade_id"
    kinds = {"test": [], "answer": [], "manual": []}
    for cell in nb.cells:
        meta = _meta(cell)
        assert meta["schema_version"] == 3
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{meta['grade_id']} has outputs"
        if meta["grade"] and not meta["solution"]:
            kinds["test"].append(meta["grade_id"])
            assert meta["locked"] and meta["points"] > 0
            visible, _, hidden = cell.source.partition("### BEGIN HIDDEN TESTS")
            assert "lab02.check_" in visible and "graders/lab02.py" in hidden
        elif meta["grade"]:
            kinds["manual"].append(meta["grade_id"])
            assert cell.cell_type == "markdown" and meta["points"] > 0 and not meta["locked"]
        elif meta["solution"]:
            kinds["answer"].append(meta["grade_id"])
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source
        else:
            assert meta["locked"], f"instruction cell {meta['grade_id']} is locked"
    assert kinds == {"test": ["check-schema", "check-rules", "check-weekly-cost", "check-workflow"],
                     "answer": ["schema", "rules", "weekly-cost"], "manual": ["reflect-monitoring"]}


def test_lab02_starting_text_of_each_exercise_fails_its_check(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

    monkeypatch.setenv("MARKETLAB_BACKEND", "scripted")  # the setup cell runs as written, on the scripted model
    nb, _ = ClearSolutions().preprocess(_notebook(), {})
    nb, _ = ClearHiddenTests().preprocess(nb, {})
    cells = {_meta(c)["grade_id"]: c.source for c in nb.cells}
    namespace: dict[str, Any] = {}
    exec(cells["setup"], namespace)
    exec("results = lab02._results_table(3, 400, 100)", namespace)
    for answer, check in EXERCISES:
        starting = STUB.sub("", cells[answer])
        assert "NotImplementedError" not in starting
        exec(starting, namespace)
        with pytest.raises(CheckFailed):  # the line to change, left as it is, fails its check
            exec(cells[check], namespace)


def test_lab02_edit_one_line_cells_fail_on_a_plainly_wrong_line_and_pass_on_the_solution_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETLAB_BACKEND", "scripted")
    cells = {_meta(c)["grade_id"]: c.source for c in _notebook().cells}
    namespace: dict[str, Any] = {}
    exec(cells["setup"], namespace)
    exec("results = lab02._results_table(3, 400, 100)", namespace)
    region = re.compile(r"^[ \t]*### BEGIN SOLUTION\n(.*?)\n[ \t]*### END SOLUTION\n", re.M | re.S)
    for answer, check, wrong in (
            ("schema", "check-schema", '    headline: str = Field(description="the headline")'),  # no limit
            ("weekly-cost", "check-weekly-cost", '    paid = results[results["status"] != "failed"]')):
        cell = cells[answer]
        assert len(region.search(cell).group(1).splitlines()) == 1, f"{answer}: the solution is one line"
        given = next(line for line in cell.splitlines() if "<- change this line" in line)
        exec(region.sub("", cell).replace(given, wrong), namespace)
        with pytest.raises(CheckFailed):
            exec(cells[check].split("\n### BEGIN HIDDEN TESTS")[0], namespace)
        exec(cell, namespace)  # the solution line (it follows, and so overrides, the line as given)
        exec(cells[check].split("\n### BEGIN HIDDEN TESTS")[0], namespace)


@pytest.mark.slow
@pytest.mark.nbgrader
def test_lab02_validates_through_nbgrader(tmp_path: Path) -> None:
    assert_validates(LAB, tmp_path, 7, ["reflect-monitoring"])
