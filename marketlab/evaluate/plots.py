"""One call draws the evaluation: pass rates by check, and the judge-versus-people confusion table.

    from marketlab.evaluate.plots import plot
    plot(results)                          # a run_checks result: pass rate of each check
    plot(comparison, calibration)          # A and B side by side, and the confusion table

Figures are built without pyplot's global state (safe under the Agg backend, in graders and in
threads); a notebook shows the returned Figure as usual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..figures import showable
from .calibrate import Calibration
from .compare import Comparison, check_columns, pass_rates
from .errors import EvaluateInputError

if TYPE_CHECKING:  # matplotlib takes about a core-second to import: loaded when a chart is drawn
    from matplotlib.figure import Figure

A_COLOUR, B_COLOUR = "#9aa5b1", "#2f6f4f"


def plot(results: Comparison | pd.DataFrame | None = None, calibration: Calibration | None = None) -> Figure:
    """Pass rates by check (A and B side by side for a Comparison) and/or the confusion table, in one Figure."""
    if results is None and calibration is None:
        raise EvaluateInputError("plot() was given nothing to draw.",
                                 "Pass run_checks results or a compare() result, and/or a calibrate() result.")
    if results is not None and not isinstance(results, (Comparison, pd.DataFrame)):
        raise EvaluateInputError(f"results is a {type(results).__name__}.",
                                 "Pass the table run_checks returned, or the result of compare(a, b).")
    if calibration is not None and not isinstance(calibration, Calibration):
        raise EvaluateInputError(f"calibration is a {type(calibration).__name__}.",
                                 "Pass the result of calibrate(predicted, human).")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [p for p in (results, calibration) if p is not None]
    figure = Figure(figsize=(6.5 * len(panels), 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    if results is not None:
        _pass_rates(axes[0], results)
    if calibration is not None:
        _confusion(axes[-1], calibration)
    return showable(figure)


def _pass_rates(ax: Any, results: Comparison | pd.DataFrame) -> None:
    if isinstance(results, Comparison):
        table = results.table()
        series = {"A": table["a"].to_numpy(), "B": table["b"].to_numpy()}
        title = f"Pass rate by check: A {results.pass_rate_a:.0%}, B {results.pass_rate_b:.0%} pass every check"
    else:
        rates = pass_rates(results, check_columns(results))
        overall = float(results["passed"].fillna(False).astype(bool).mean())
        table = pd.DataFrame({"check": [*rates.index, "all checks"]})
        series = {"": np.append(rates.to_numpy(), overall)}
        title = f"Pass rate by check ({len(results)} texts)"
    positions = np.arange(len(table))
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(series.items()):
        colour = A_COLOUR if label == "A" else B_COLOUR
        bars = ax.barh(positions + (i - (len(series) - 1) / 2) * width, values * 100, width, label=label or None,
                       color=colour)
        ax.bar_label(bars, labels=[f"{v:.0%}" for v in values], padding=2, fontsize=8)
    ax.set_yticks(positions, table["check"].tolist())
    ax.invert_yaxis()
    ax.set_xlim(0, 110)
    ax.set_xlabel("texts that pass (%)")
    ax.set_title(title, fontsize=10)
    if len(series) > 1:
        ax.legend(loc="lower right")


def _confusion(ax: Any, calibration: Calibration) -> None:
    matrix = calibration.confusion
    ax.imshow(matrix.to_numpy(), cmap="Greens")
    labels_x, labels_y = [str(c) for c in matrix.columns], [str(i) for i in matrix.index]
    ax.set_xticks(range(len(labels_x)), labels_x)
    ax.set_yticks(range(len(labels_y)), labels_y)
    ax.set_xlabel("the judge said")
    ax.set_ylabel("people said")
    high = matrix.to_numpy().max() or 1
    for (row, col), count in np.ndenumerate(matrix.to_numpy()):
        ax.text(col, row, str(count), ha="center", va="center", color="white" if count > high / 2 else "black")
    ax.set_title(f"Judge vs people: agreement {calibration.agreement:.0%}, kappa {calibration.kappa:.2f}",
                 fontsize=10)


__all__ = ["plot"]
