"""Issue 26, item 3: every tip's code in the labs' markdown that is meant to be run runs as written.

The rule for "meant to be run": a fenced ```python block, or an inline `code` span that starts with
`from ` or `import ` (a whole line to paste). Other inline code names a function or a value inside a
sentence, and shell commands (`marketlab run ...`) are run by the labs' own cells.

Each tip runs in its lab's folder of a learner's workspace (made by prepare_workspace, as `marketlab
lab` makes it) after the lab's solution ran there in a real kernel, so the files the lab saves
(workflow.py, evaluate.py ...) are beside it; in a fresh Python, on the scripted backend, with the home
the solution ran with. The solution runs once per session (tests/support/learner_workspace.py), shared
with test_capstone.py, which checks the capstone's run. The files a tip names as the learner's own at
work (my_products.csv ...) are made from the course's data.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.support.learner_workspace import LearnerWorkspace

REPO = Path(__file__).resolve().parent.parent
LABS = REPO / "labs"
FENCED = re.compile(r"```python[^\n]*\n(.*?)```", re.DOTALL)
INLINE = re.compile(r"(?<!`)`((?:from|import)\s[^`\n]+)`(?!`)")
READS = re.compile(r"""(?:read_csv|open)\(\s*["']([^"']+)["']""")


def _stand_ins(folder: Path) -> dict[str, object]:
    """The learner's own files a tip reads, made from the course's data."""
    import pandas as pd

    from marketlab import data

    products = data.load("products")
    rated = pd.read_csv(REPO / "datasets" / "rated_outputs.csv")
    return {
        "my_products.csv": lambda: products.head(3).to_csv(folder / "my_products.csv", index=False),
        "product_export.csv": lambda: products.to_csv(folder / "product_export.csv", index=False),
        "this_weeks_copy.csv": lambda: rated[["sku", "channel", "text"]].head(5).to_csv(
            folder / "this_weeks_copy.csv", index=False),
        "weekly_export.csv": lambda: data.load("campaign_weekly").to_csv(folder / "weekly_export.csv", index=False),
        "acme.md": lambda: shutil.copy(REPO / "datasets" / "proposals" / "01_fernhollow_analytics.md",
                                       folder / "acme.md"),
    }


def tips() -> list[tuple[str, str, str]]:
    """(lab folder, cell id, code) of every tip meant to be run, in every lab notebook."""
    found = []
    for path in sorted(LABS.glob("*/*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "markdown":
                continue
            for block in FENCED.findall(cell.source):
                found.append((path.parent.name, cell.id, block))
            for line in INLINE.findall(FENCED.sub("", cell.source)):
                found.append((path.parent.name, cell.id, line))
    return found


def test_the_tips_are_found_and_every_file_they_read_has_a_stand_in(tmp_path: Path) -> None:
    found = tips()
    labs = {lab for lab, _, _ in found}
    assert {"02-workflow", "03-evaluate", "04-monitor", "05-commission", "capstone"} <= labs, labs
    assert any("artifacts.load_brief()" in code for _, _, code in found), "the capstone's inline tip is found"
    named = {name for _, _, code in found for name in READS.findall(code)}
    missing = named - set(_stand_ins(tmp_path))
    assert named <= set(_stand_ins(tmp_path)), f"a tip reads a file with no stand-in: {missing}"


@pytest.mark.nbgrader
@pytest.mark.slow
@pytest.mark.parametrize("lab", sorted({lab for lab, _, _ in tips()}))
def test_every_tip_runs_as_written_in_its_labs_folder(lab: str, learner_workspace: LearnerWorkspace,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    run = learner_workspace.solution_run(lab)  # once per session: test_capstone.py reads the capstone's run
    monkeypatch.setenv("MARKETLAB_BACKEND", "scripted")
    monkeypatch.setenv("MARKETLAB_HOME", str(run.home))  # the home the solution ran with, as before
    here = run.folder
    stand_ins = _stand_ins(here)
    for _, cell_id, code in [t for t in tips() if t[0] == lab]:
        for name in READS.findall(code):
            stand_ins[name]()
        done = subprocess.run([sys.executable, "-c", code], cwd=here, capture_output=True, text=True, timeout=300,
                              check=False)
        assert done.returncode == 0, f"{lab} [{cell_id}]:\n{code}\n{done.stderr[-2000:]}"
