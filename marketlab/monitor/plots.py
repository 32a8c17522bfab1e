"""Pictures a marketer reads at a glance: totals beside the rate, and the monitoring report."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..figures import showable
from .errors import MonitorError
from .presets import CAMPAIGN
from .rates import weekly_rates
from .settings import MonitorSettings
from .table import check_weekly

BAD, NORMAL, LIMIT, REFERENCE = "#b3261e", "#1f5fa8", "#7a7a7a", "#eeeeee"


def _figure(width: float, height: float, rows: int = 1, cols: int = 1) -> tuple[Any, Any]:
    # A Figure outside pyplot: safe without a display, shown by Jupyter when returned.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, cols, squeeze=False)


def _pick(names: list[str], wanted: str | None, what: str) -> str:
    if not names:
        raise MonitorError(f"The settings have no {what} to draw.", "Add one to the MonitorSettings.")
    if wanted is None:
        return names[0]
    if wanted not in names:
        raise MonitorError(f"There is no {what} called {wanted!r}.", f"Use one of {names}.")
    return wanted


def plot_counts_and_rate(weekly: pd.DataFrame, settings: MonitorSettings = CAMPAIGN, rate: str | None = None) -> Any:
    """Totals (indexed, reference average = 100) beside the rate with its Wilson interval: one Figure."""
    name = _pick([r.name for r in settings.rates], rate, "rate")
    table = check_weekly(weekly, settings, reference=False)
    rates = weekly_rates(weekly, settings)
    week, reference = table[settings.week], settings.windows.reference_weeks
    figure, axes = _figure(12, 4, 1, 2)
    totals, right = axes[0][0], axes[0][1]
    for column in settings.totals or tuple(r.trials for r in settings.rates if r.name == name):
        base = table[column].iloc[:reference].mean()
        totals.plot(week, 100 * table[column] / base if base else table[column], label=column)
    totals.axhline(100, color=LIMIT, linewidth=0.8, linestyle=":")
    totals.set_title("Totals: indexed, reference average = 100")
    totals.legend(loc="upper left", fontsize=8)
    right.fill_between(week, rates[f"{name}_low"], rates[f"{name}_high"], color=NORMAL, alpha=0.2,
                       label="95% interval" if settings.chart.confidence == 0.95 else "interval")
    right.plot(week, rates[name], color=NORMAL, label=name)
    spec = next(r for r in settings.rates if r.name == name)
    centre = rates[spec.successes].iloc[:reference].sum() / rates[spec.trials].iloc[:reference].sum()
    right.axhline(centre, color=LIMIT, linewidth=0.8, linestyle="--", label="reference average")
    right.set_title(f"Rate: {name}")
    right.legend(loc="lower left", fontsize=8)
    for ax in (totals, right):
        ax.axvspan(week.iloc[0], week.iloc[reference - 1], color=REFERENCE, zorder=0)
        ax.tick_params(axis="x", labelrotation=30)
    figure.suptitle("The totals can grow while the rate falls")
    return showable(figure)


def plot_report(report: pd.DataFrame, settings: MonitorSettings = CAMPAIGN, metric: str | None = None) -> Any:
    """A metric of a weekly report against its control limits, with alerts, and the mixes' PSI below it."""
    name = _pick(list(settings.charted), metric, "rate or measure")
    week, reference = report[settings.week], settings.windows.reference_weeks
    psi_columns = [m.psi_metric for m in settings.mixes if m.psi_metric in report.columns]
    figure, axes = _figure(12, 6.5 if psi_columns else 4, 2 if psi_columns else 1, 1)
    chart = axes[0][0]
    if f"{name}_low" in report.columns:
        chart.fill_between(week, report[f"{name}_low"], report[f"{name}_high"], color=NORMAL, alpha=0.15)
    chart.plot(week, report[name], color=NORMAL, marker="o", markersize=3, label=name)
    chart.plot(week, report[f"{name}_centre"], color=LIMIT, linestyle="--", linewidth=1, label="centre line")
    chart.plot(week, report[f"{name}_lower_limit"], color=LIMIT, linewidth=1, label="control limits")
    chart.plot(week, report[f"{name}_upper_limit"], color=LIMIT, linewidth=1)
    rules_here = report["firing"].str.len() > 0
    chart.scatter(week[rules_here], report.loc[rules_here, name], color=BAD, s=18, zorder=3, label="a rule fires")
    for when, names in zip(week, report["raised"]):
        if names:
            chart.axvline(when, color=BAD, linewidth=1, alpha=0.6)
            chart.annotate(names, (when, chart.get_ylim()[1]), fontsize=7, color=BAD, rotation=90, va="top",
                           ha="right")
    chart.set_title(f"{name}: control chart, limits from the {reference}-week reference window")
    chart.legend(loc="lower left", fontsize=8)
    for ax in (row[0] for row in axes):
        ax.axvspan(week.iloc[0], week.iloc[reference - 1], color=REFERENCE, zorder=0)
    if psi_columns:
        drift = axes[1][0]
        for column in psi_columns:
            drift.plot(week, report[column], label=column)
        drift.axhline(settings.drift.psi_threshold, color=BAD, linestyle=":", linewidth=1, label="drift threshold")
        drift.set_title("Population stability index, current window vs reference")
        drift.legend(loc="upper left", fontsize=8)
    return showable(figure)
