"""Issue 26: every chart a lab cell promises is shown, as a picture, in the learner's notebook.

marketlab's charts are Figures made outside pyplot; a notebook shows such a Figure only as text
unless a PNG formatter is registered, and a trailing `;` hides it altogether.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbclient
import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
CHART_CALLS = ("plot(", "plot_counts_and_rate(", "plot_report(")


@pytest.mark.nbgrader
def test_a_returned_chart_is_shown_as_a_picture_in_a_real_kernel() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in (
        "from marketlab import data\nfrom marketlab.monitor import run_monitor\n"
        "from marketlab.monitor.plots import plot_counts_and_rate\nweekly = data.load('campaign_weekly')",
        "plot_counts_and_rate(weekly)",
        "run_monitor(weekly).plot()",
    )]
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=300).execute()
    for cell in nb.cells[1:]:
        shown = [out for out in cell.outputs if out.output_type in ("execute_result", "display_data")]
        assert shown and "image/png" in shown[0].data, f"{cell.source!r} showed {cell.outputs}"


def test_no_lab_cell_hides_the_chart_it_draws() -> None:
    hidden = []
    for path in sorted((REPO / "labs").rglob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            last = source.strip().splitlines()[-1] if source.strip() else ""
            if cell["cell_type"] == "code" and last.endswith(";") and any(c in last for c in CHART_CALLS):
                hidden.append(f"{path.name}: {last}")
    assert hidden == [], "a trailing ';' hides the chart: " + "; ".join(hidden)
