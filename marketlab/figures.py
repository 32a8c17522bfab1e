"""Figures that show in a notebook when a cell returns them.

marketlab draws its charts on Figures made outside pyplot (safe in graders, threads and without a
display). IPython shows such a Figure as text ("<Figure size 800x300 with 2 Axes>") unless a PNG
formatter is registered for it, which pyplot only does once it is imported. `showable()` registers
it in the running kernel (once) and is called by every function that returns a chart.
"""

from __future__ import annotations

from typing import Any


def showable(figure: Any) -> Any:
    """The same Figure, after making sure the running IPython kernel (if any) draws Figures as PNG."""
    try:
        from IPython import get_ipython
    except ImportError:
        return figure
    shell = get_ipython()
    if shell is None:
        return figure
    from IPython.core.pylabtools import print_figure
    from matplotlib.figure import Figure

    formatter = shell.display_formatter.formatters["image/png"]
    if Figure not in formatter.type_printers:
        formatter.for_type(Figure, lambda fig: print_figure(fig, "png", bbox_inches="tight"))
    return figure
