"""A tiny synthetic course for attacking the grading pipeline: one lab, one grader, one secret.

Lab `90-attack`: an answer cell defining `double(x)`, one autograded check cell worth 1 point
(graded outside the sandbox by graders/lab90.py on holdout inputs), one hand-marked reflection.
"""

from __future__ import annotations

import copy
import uuid
from pathlib import Path

import nbformat

LAB = "90-attack"
NOTEBOOK = f"{LAB}.ipynb"
CORRECT = "def double(x):\n    return 2 * x"
WRONG = "def double(x):\n    return x + 3"  # right for 3 only: a fixed answer cannot pass every hidden case

GRADER = '''"""Hidden test of lab 90: the learner's double() on holdout inputs, judged here."""
import csv
from pathlib import Path

from marketlab.checks import CheckResult

HOLDOUT = Path(__file__).resolve().parent / "holdout" / "secret.csv"


def grade(sub):
    result = CheckResult("double", "double() doubles numbers it has not seen", hint="Return x times 2.")
    double = sub.function("double")
    with HOLDOUT.open() as rows:
        for row in csv.DictReader(rows):
            got = double(int(row["x"]))
            if type(got) is not int or got != int(row["expected"]):
                result.fail("double() gave a wrong answer on a hidden case")
                break
    return result


GRADERS = {"check-double": grade}
'''


def _meta(grade_id: str, *, grade: bool, solution: bool, points: float = 0) -> dict:
    meta = {"grade_id": grade_id, "grade": grade, "solution": solution, "locked": not solution,
            "schema_version": 3}
    if grade:
        meta["points"] = points
    return {"nbgrader": meta}


def make_lab(labs: Path) -> Path:
    """Write labs/90-attack/90-attack.ipynb (instructor version, no outputs)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Lab 90\nWrite `double(x)`."),
        nbformat.v4.new_code_cell("def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
                                  metadata=_meta("answer-double", grade=False, solution=True)),
        nbformat.v4.new_code_cell("assert double(2) == 4", metadata=_meta("check-double", grade=True,
                                                                          solution=False, points=1)),
        nbformat.v4.new_markdown_cell("YOUR ANSWER HERE", metadata=_meta("reflection", grade=True, solution=True,
                                                                          points=1)),
    ]
    path = labs / LAB / NOTEBOOK
    path.parent.mkdir(parents=True)
    nbformat.write(nb, path)
    return path


def make_graders(graders: Path, marker: str) -> Path:
    """graders/lab90.py and graders/holdout/secret.csv; the marker is in the holdout, never sent to a kernel."""
    (graders / "holdout").mkdir(parents=True)
    (graders / "lab90.py").write_text(GRADER)
    (graders / "holdout" / "secret.csv").write_text(
        f"x,expected,note\n3,6,{marker}\n5,10,{marker}\n-4,-8,{marker}\n")
    return graders


def learner_notebook(release: Path, *, answer: str = CORRECT, before: list[str] = (), after: list[str] = (),
                     duplicate: bool = False) -> nbformat.NotebookNode:
    """The released notebook as a learner hands it in: their answer, their extra cells."""
    nb = nbformat.read(release, as_version=4)
    cells = []
    for cell in nb.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id == "answer-double":
            cells += [nbformat.v4.new_code_cell(source) for source in before]
            cell.source = answer
            cells.append(cell)
            cells += [nbformat.v4.new_code_cell(source) for source in after]
        else:
            cells.append(cell)
        if duplicate and grade_id in ("answer-double", "check-double"):
            pasted = copy.deepcopy(cell)  # copy/paste in Jupyter keeps the metadata, gives a new id
            pasted["id"] = uuid.uuid4().hex[:8]
            cells.append(pasted)
    nb.cells = cells
    return nb


def hand_in(folder: Path, nb: nbformat.NotebookNode | None, files: dict[str, str] | None = None) -> Path:
    """Write a submission folder directly (as collect would leave it)."""
    folder.mkdir(parents=True, exist_ok=True)
    if nb is not None:
        nbformat.write(nb, folder / NOTEBOOK)
    for name, text in (files or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def outputs(notebook: Path) -> str:
    """Every output text of a graded notebook, joined (what the learner's cells printed)."""
    nb = nbformat.read(notebook, as_version=4)
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(str(output.get("text", "")))
            parts.append(str(output.get("evalue", "")))
            parts += [str(v) for v in output.get("data", {}).values()]
            parts += [str(t) for t in output.get("traceback", [])]
    return "\n".join(parts)
