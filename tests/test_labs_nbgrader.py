"""Labs 0 and 1 through real nbgrader: solutions pass, student versions fail, nothing leaks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from marketlab.checks import CheckFailed
from marketlab.course import validate_lab
from marketlab.course.validate import _leaks

REPO = Path(__file__).resolve().parent.parent
LABS = [REPO / "labs" / "00-first-steps", REPO / "labs" / "01-brief"]


def _notebook(lab: Path) -> nbformat.NotebookNode:
    return nbformat.read(lab / f"{lab.name}.ipynb", as_version=4)


def _meta(cell: Any) -> dict[str, Any]:
    return cell.metadata.get("nbgrader", {})


# ---- the labs as stored ----------------------------------------------------------------------


@pytest.mark.parametrize("lab", LABS, ids=lambda p: p.name)
def test_lab_is_stored_clean_with_correct_metadata(lab: Path) -> None:
    nb = _notebook(lab)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert re.search(r"\*\*Time: about \d+ minutes", nb.cells[0].source), "time stated at the top"
    ids = [_meta(c)["grade_id"] for c in nb.cells if _meta(c)]
    assert len(ids) == len(set(ids)), "grade_ids must be unique"
    tests = answers = manual = 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{cell.id} has outputs"
        meta = _meta(cell)
        if not meta:
            continue
        assert meta["schema_version"] == 3
        if meta["grade"] and not meta["solution"]:
            tests += 1
            assert meta["locked"] and meta["points"] > 0
            visible = cell.source.split("### BEGIN HIDDEN TESTS")[0]
            assert "check_" in visible, f"{meta['grade_id']} gives the learner a visible check"
            # graded outside the learner's sandbox, by the lab's grader registry
            assert meta["grade_id"] in _graders(lab).GRADERS, f"{meta['grade_id']} has no grader"
            if "### BEGIN HIDDEN TESTS" in cell.source:
                hidden = cell.source.split("### BEGIN HIDDEN TESTS")[1]
                assert f"graders/lab{lab.name[:2]}.py" in hidden
        elif meta["solution"] and meta["grade"]:
            manual += 1
            assert cell.cell_type == "markdown" and "### BEGIN SOLUTION" in cell.source
        elif meta["solution"]:
            answers += 1
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source
        else:
            assert meta["locked"], f"instruction cell {meta['grade_id']} is locked"
    assert tests >= 2 and answers >= 2 and manual == 1


def test_lab01_starting_text_of_each_exercise_fails_its_check() -> None:
    from nbgrader.preprocessors import ClearSolutions

    nb, _ = ClearSolutions().preprocess(_notebook(LABS[1]), {})
    cells = {c.id: c.source for c in nb.cells}
    for answer, check in (("objective", "check-objective"), ("inputs", "check-inputs"),
                          ("output", "check-output"), ("operations", "check-operations")):
        # the learner edits nothing but deletes the two stub lines
        starting = cells[answer].replace("# YOUR CODE HERE\nraise NotImplementedError()", "")
        assert "NotImplementedError" not in starting
        namespace: dict[str, Any] = {}
        exec("from marketlab.brief import Brief\nfrom marketlab.checks import lab01", namespace)
        exec(starting, namespace)
        with pytest.raises(CheckFailed):
            exec(cells[check], namespace)


def test_lab00_ask_is_one_settings_line_to_change() -> None:
    """The settings line as given fails the check, so does a plainly wrong one; the solution line passes."""
    cell = {c.id: c.source for c in _notebook(LABS[0]).cells}["ask"]
    region = re.compile(r"^[ \t]*### BEGIN SOLUTION\n(.*?)\n[ \t]*### END SOLUTION\n", re.M | re.S)
    solution = region.search(cell).group(1)
    assert len(solution.splitlines()) == 1 and solution.strip().startswith("settings = ")
    given = next(line for line in cell.splitlines() if "<- change this line" in line)
    namespace: dict[str, Any] = {"client": None, "MODEL": "scripted"}
    exec("from marketlab.checks import lab00", namespace)
    for line in (given, '    settings = dict(temperature=1.0, seed=42, max_tokens=40)'):  # a fixed seed
        exec(region.sub("", cell).replace(given, line), namespace)
        with pytest.raises(CheckFailed):
            exec("lab00.check_ask(ask)", namespace)
    exec(cell, namespace)
    exec("lab00.check_ask(ask)", namespace)


# ---- nbgrader end to end ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS, ids=lambda p: p.name)
@pytest.mark.nbgrader
def test_lab_validates_through_nbgrader(lab: Path, tmp_path: Path) -> None:
    """nbgrader's grading kernels run on the scripted model whatever the environment says (the sandbox's
    allowed_env and the grading worker both set MARKETLAB_BACKEND=scripted), so this test needs no model
    server; the labs run on the live model under nbval (labs/, `make test`)."""
    files_before = sorted(p.name for p in lab.iterdir())
    result = validate_lab(lab, workdir=tmp_path / "course", backend="scripted")
    assert result.ok, result.summary()
    autograded = [s for s in result.solution_scores if s.autograded]
    assert autograded and all(s.full for s in autograded)
    assert all(s.score == 0 for s in result.student_scores if s.autograded)
    assert [s.grade_id for s in result.solution_scores if not s.autograded] == [
        "reflect-cost" if lab.name.startswith("00") else "reflect-vendor"]
    released = (tmp_path / "course" / "release" / lab.name / f"{lab.name}.ipynb").read_text()
    assert "graders" not in released and "BEGIN SOLUTION" not in released
    # grading runs in the temporary course: nothing is written next to the instructor's notebook
    assert sorted(p.name for p in lab.iterdir()) == files_before


def _graders(lab: Path) -> Any:
    """The grader module of a lab (graders/labNN.py), imported as grading imports it."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "graders" / f"lab{lab.name[:2]}.py"
    spec = importlib.util.spec_from_file_location(f"test_graders_{lab.name[:2]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_lab(folder: Path) -> Path:
    """A lab whose solution is wrong and whose second test passes without an answer (if the backend is set)."""
    lab = folder / "99-broken"
    lab.mkdir(parents=True)

    def meta(gid: str, **flags: Any) -> dict[str, Any]:
        base = {"grade": False, "solution": False, "locked": False, "task": False, "schema_version": 3}
        return {"nbgrader": {**base, **flags, "grade_id": gid}}

    nb = new_notebook(cells=[
        new_markdown_cell("**Time: about 1 minutes**", metadata=meta("intro", locked=True)),
        new_code_cell("def double(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION",
                      metadata=meta("double", solution=True)),
        new_code_cell("assert double(3) == 6", metadata=meta("check-double", grade=True, locked=True, points=1)),
        new_code_cell("import os\n### BEGIN HIDDEN TESTS\nassert os.environ['MARKETLAB_BACKEND'] == 'scripted'\n"
                      "### END HIDDEN TESTS",
                      metadata=meta("check-nothing", grade=True, locked=True, points=1)),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, lab / "99-broken.ipynb")
    return lab


TINY_GRADERS = """
from marketlab.checks import CheckResult


def grade_double(sub):
    result = CheckResult("double", "double doubles")
    try:
        if sub.function("double")(21) != 42:
            result.fail("double(21) is not 42")
    except Exception as err:
        result.fail(f"double(21) stopped: {err}")
    return result


def grade_nothing(sub):
    return CheckResult("nothing", "passes whatever the notebook holds")


GRADERS = {"check-double": grade_double, "check-nothing": grade_nothing}
"""


@pytest.mark.slow
@pytest.mark.nbgrader
def test_validate_reports_a_wrong_solution_and_a_test_students_pass(tmp_path: Path) -> None:
    graders = tmp_path / "graders"
    graders.mkdir()
    (graders / "lab99.py").write_text(TINY_GRADERS)
    result = validate_lab(_tiny_lab(tmp_path / "labs"), workdir=tmp_path / "course", graders_dir=graders)
    assert not result.ok
    # decided by the graders, outside the sandbox: the wrong solution fails, the empty check passes
    assert [s.grade_id for s in result.solution_failures] == ["check-double"]
    assert [s.grade_id for s in result.student_passes] == ["check-nothing"]
    assert "solution fails" in result.summary() and "student version passes" in result.summary()


def test_leak_detection_finds_solution_and_hidden_text() -> None:
    source = _notebook(LABS[1])
    leaked = _leaks(source, source, "01-brief.ipynb")
    assert any("BEGIN SOLUTION" in leak for leak in leaked)
    assert any("graders/lab01.py (grade_build_messages)" in leak for leak in leaked)
    assert any("failure_handling = \"Descriptions that fail" in leak for leak in leaked)

    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

    release, _ = ClearSolutions().preprocess(_notebook(LABS[1]), {})
    release, _ = ClearHiddenTests().preprocess(release, {})
    assert _leaks(source, release, "01-brief.ipynb") == []


@pytest.mark.nbgrader
def test_validate_refuses_notebooks_stored_with_outputs(tmp_path: Path) -> None:
    lab = _tiny_lab(tmp_path)
    nb = nbformat.read(lab / "99-broken.ipynb", as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="hi")]
    nbformat.write(nb, lab / "99-broken.ipynb")
    from marketlab.course.validate import _has_outputs

    assert _has_outputs(nbformat.read(lab / "99-broken.ipynb", as_version=4))
    empty = tmp_path / "empty-lab"
    empty.mkdir()
    assert validate_lab(empty).problems == [f"no notebooks in {empty.resolve()}"]
