"""One check of a lab notebook as stored: clean, nbgrader metadata right, every test cell graded by its grader."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import nbformat

REPO = Path(__file__).resolve().parents[2]


def meta(cell: Any) -> dict[str, Any]:
    """The nbgrader metadata of a cell."""
    return cell.metadata.get("nbgrader", {})


def notebook(lab: Path) -> nbformat.NotebookNode:
    """The lab's notebook as stored (labs/NN-name/NN-name.ipynb)."""
    return nbformat.read(lab / f"{lab.name}.ipynb", as_version=4)


def graders(lab: Path) -> Any:
    """The grader module of a lab (graders/labNN.py), imported as grading imports it."""
    path = REPO / "graders" / f"lab{lab.name[:2]}.py"
    spec = importlib.util.spec_from_file_location(f"test_graders_{lab.name[:2]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def stored_kinds(lab: Path) -> dict[str, list[str]]:
    """Assert the stored notebook is clean and well-formed; its grade ids by kind (test, answer, manual)."""
    nb = notebook(lab)
    nbformat.validate(nb)
    prefix = lab.name[:2]
    assert re.search(r"\*\*Time: about \d+ minutes", nb.cells[0].source), "time stated at the top"
    ids = [meta(c).get("grade_id") for c in nb.cells]
    assert all(ids) and len(ids) == len(set(ids)), "every cell has a unique grade_id"
    assert [c.id for c in nb.cells] == ids, "cell ids are the grade ids"
    registry = graders(lab).GRADERS
    kinds: dict[str, list[str]] = {"test": [], "answer": [], "manual": []}
    for cell in nb.cells:
        info = meta(cell)
        assert info["schema_version"] == 3
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{info['grade_id']} has outputs"
        if info["grade"] and not info["solution"]:
            kinds["test"].append(info["grade_id"])
            assert info["locked"] and info["points"] > 0 and info["grade_id"] in registry
            visible, _, hidden = cell.source.partition("### BEGIN HIDDEN TESTS")
            assert f"lab{prefix}.check_" in visible and f"graders/lab{prefix}.py" in hidden
        elif info["grade"]:
            kinds["manual"].append(info["grade_id"])
            assert cell.cell_type == "markdown" and info["points"] > 0 and not info["locked"]
            assert "### BEGIN SOLUTION" in cell.source, "a model answer for the instructor"
        elif info["solution"]:
            kinds["answer"].append(info["grade_id"])
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source
        else:
            assert info["locked"], f"instruction cell {info['grade_id']} is locked"
    assert sorted(registry) == sorted(kinds["test"]), "every graded cell has a grader, and no grader is spare"
    return kinds
