"""One check of a lab notebook as stored: clean, nbgrader metadata right, every test cell graded by its grader."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import nbformat

from marketlab.course.layout import graders_module

REPO = Path(__file__).resolve().parents[2]


def meta(cell: Any) -> dict[str, Any]:
    """The nbgrader metadata of a cell."""
    return cell.metadata.get("nbgrader", {})


def notebook(lab: Path) -> nbformat.NotebookNode:
    """The lab's notebook as stored (labs/NN-name/NN-name.ipynb, labs/capstone/capstone.ipynb)."""
    return nbformat.read(lab / f"{lab.name}.ipynb", as_version=4)


def graders(lab: Path) -> Any:
    """The grader module of a lab (graders/labNN.py, graders/capstone.py), imported as grading imports it."""
    name = graders_module(lab.name)
    path = REPO / "graders" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"test_graders_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def stored_kinds(lab: Path) -> dict[str, list[str]]:
    """Assert the stored notebook is clean and well-formed; its grade ids by kind (test, answer, manual)."""
    nb = notebook(lab)
    nbformat.validate(nb)
    name = graders_module(lab.name)
    # Labs call their checks as labNN.check_...; the capstone as checks.check_ (capstone is the learner's module).
    call = f"{name}.check_" if name.startswith("lab") else "checks.check_"
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
            assert call in visible and f"graders/{name}.py" in hidden
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


def assert_validates(lab: Path, workdir: Path, auto_points: float, manual: list[str]) -> None:
    """The lab through real nbgrader (scripted model): the solution gets every automatic point, the
    student version none, the manual cells wait for a person, nothing leaks, the lab folder is untouched."""
    from marketlab.course import validate_lab

    files_before = sorted(p.name for p in lab.iterdir())
    result = validate_lab(lab, workdir=workdir / "course", backend="scripted")
    assert result.ok, result.summary()
    autograded = [s for s in result.solution_scores if s.autograded]
    assert sum(s.max_score for s in autograded) == auto_points and all(s.full for s in autograded), result.summary()
    assert all(s.score == 0 for s in result.student_scores if s.autograded)
    assert [s.grade_id for s in result.solution_scores if not s.autograded] == manual
    released = (workdir / "course" / "release" / lab.name / f"{lab.name}.ipynb").read_text()
    assert "graders" not in released and "BEGIN SOLUTION" not in released
    assert sorted(p.name for p in lab.iterdir()) == files_before
