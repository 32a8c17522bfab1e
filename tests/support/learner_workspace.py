"""A lab's solution run once per test session in a learner's workspace, for every test that reads the run.

The workspace is made as `marketlab lab` makes it (prepare_workspace: nbgrader's student version), the
learner's answer cells get the solution's text, and the notebook runs top to bottom in a real kernel from
its own folder on the scripted backend (nbclient raises on a failing cell). test_capstone.py reads what the
capstone's locked cells printed and saved; test_lab_tips.py runs each lab's tips beside the files the run
left. The capstone alone takes about 20 s in its kernel on an idle 2-core machine, so it runs once.

Each lab has a workspace and a MARKETLAB_HOME of its own (as each test had before it was shared), so no
lab sees another lab's cache. What a test asserts about the state before and right after the run is
recorded at run time, so a test that later writes in the folder (a tip) cannot change what another reads.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

LABS = Path(__file__).resolve().parents[2] / "labs"
RESULTS = Path("my-results") / "results.csv"


@dataclass(frozen=True)
class SolutionRun:
    """One lab's student copy, answered with the solution and run in a kernel from its folder."""

    folder: Path  # workspace/<lab>, where the notebook ran
    home: Path  # the MARKETLAB_HOME its kernel had
    notebook: nbformat.NotebookNode  # as executed, with every cell's outputs
    results_folder_before: bool  # whether my-results/ existed before the run (nobody makes it for the learner)
    results_csv: str | None  # my-results/results.csv as the run left it, if it wrote one

    def shown(self, cell_id: str) -> str:
        """Everything a cell printed or displayed as text."""
        cell = next(c for c in self.notebook.cells if c.id == cell_id)
        return "\n".join(str(o.get("text") or o.get("data", {}).get("text/plain", "")) for o in cell.outputs)


class LearnerWorkspace:
    """Solution runs by lab, made on first request and then shared."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._runs: dict[str, SolutionRun] = {}

    def solution_run(self, lab: str) -> SolutionRun:
        """The lab's run (made now if this is the first request; a failing cell raises here, in the test)."""
        if lab not in self._runs:
            self._runs[lab] = self._run(lab)
        return self._runs[lab]

    def _run(self, lab: str) -> SolutionRun:
        import nbclient

        from marketlab.course.workspace import prepare_workspace

        base = self.root / lab
        shutil.rmtree(base, ignore_errors=True)  # a run that failed before starts again from nothing
        shutil.copytree(LABS / lab, base / "labs" / lab)
        prepare_workspace(base / "labs", base / "workspace")
        here = base / "workspace" / lab
        home = base / "home"
        home.mkdir()
        path = next(here.glob("*.ipynb"))
        learner = nbformat.read(path, as_version=4)
        solution = {c.id: c.source for c in nbformat.read(LABS / lab / path.name, as_version=4).cells}
        for cell in learner.cells:
            if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
                cell.source = solution[cell.id]  # the learner's answers
        before = (here / RESULTS.parent).exists()
        with pytest.MonkeyPatch.context() as environment:  # the kernel inherits these
            environment.setenv("MARKETLAB_BACKEND", "scripted")
            environment.setenv("MARKETLAB_HOME", str(home))
            nbclient.NotebookClient(learner, kernel_name="python3", timeout=900,
                                    resources={"metadata": {"path": str(here)}}).execute()
        results = here / RESULTS
        return SolutionRun(here, home, learner, before, results.read_text() if results.is_file() else None)
