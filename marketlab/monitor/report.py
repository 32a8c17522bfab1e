"""The weekly monitoring report: rates, control limits, drift and alerts, one row per week.

    from marketlab import data
    from marketlab.monitor import run_monitor
    result = run_monitor(data.load("campaign_weekly"))
    result.alerts_table()      # who acts, how, and since when
    result.plot()
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .alerting import Alert, AlertRule, alert_message, alerts_table, check_rules, episode_starts
from .control import ControlChart, individuals_chart, p_chart
from .drift import counts_by_row, current_start, drift_share, mix_drift, numeric_drift
from .presets import CAMPAIGN, DEFAULT_RULES
from .rates import rates_frame
from .settings import DRIFT_SHARE, MonitorSettings
from .signals import decline_start, fires
from .table import check_weekly


def control_charts(table: pd.DataFrame, settings: MonitorSettings) -> dict[str, ControlChart]:
    """A control chart for every rate (p-chart) and measure (individuals chart) of a checked weekly table."""
    reference, chart = settings.windows.reference_weeks, settings.chart
    charts = {rate.name: p_chart(rate.name, table[rate.successes].to_numpy(), table[rate.trials].to_numpy(),
                                 reference, overdispersion=chart.overdispersion, sigmas=chart.sigmas)
              for rate in settings.rates}
    charts |= {m.name: individuals_chart(m.name, table[m.column].to_numpy(), reference, sigmas=chart.sigmas)
               for m in settings.measures}
    return charts


def _chart_columns(chart: ControlChart, index: pd.Index) -> pd.DataFrame:
    name = chart.metric
    return pd.DataFrame({f"{name}_centre": chart.centre, f"{name}_lower_limit": chart.lower,
                         f"{name}_upper_limit": chart.upper, f"{name}_sigmas": chart.z}, index=index)


def drift_columns(table: pd.DataFrame, settings: MonitorSettings) -> pd.DataFrame:
    """Per week after the reference: each mix's PSI and drift, each numeric feature's KS p-value, the drift share.

    Each week's current window is the `current_weeks` weeks up to it (never reaching into the reference).
    """
    reference = settings.windows.reference_weeks
    counts = {mix.name: counts_by_row(table, mix) for mix in settings.mixes}
    baseline = {name: rows[:reference].sum(axis=0) for name, rows in counts.items()}
    out: list[dict[str, Any]] = [{} for _ in range(reference)]
    for end in range(reference, len(table)):
        first = current_start(end, settings.windows)
        features = [mix_drift(name, baseline[name], rows[first: end + 1].sum(axis=0), settings.drift)
                    for name, rows in counts.items()]
        features += [numeric_drift(c, table[c].iloc[:reference], table[c].iloc[first: end + 1], settings.drift)
                     for c in settings.numeric]
        row: dict[str, Any] = {}
        for mix, feature in zip(settings.mixes, features):
            row[mix.psi_metric], row[f"{mix.key}_drift"] = feature.psi, feature.drift_detected
        for feature in features[len(settings.mixes):]:
            row[f"{feature.feature}_ks_p_value"] = feature.p_value
            row[f"{feature.feature}_drift"] = feature.drift_detected
        row[DRIFT_SHARE] = drift_share(features)
        row["drift_detected"] = row[DRIFT_SHARE] >= settings.drift.drift_share
        out.append(row)
    return pd.DataFrame(out, index=table.index)


@dataclass
class Monitoring:
    """One run of the monitor: the weekly report, the alerts it raised, and the rules and settings used."""

    report: pd.DataFrame
    alerts: list[Alert]
    rules: list[AlertRule]
    settings: MonitorSettings

    def alerts_table(self) -> pd.DataFrame:
        """The alerts as a DataFrame: week, rule, metric, value, trigger, owner, action, began, message."""
        return alerts_table(self.alerts)

    def first_alert(self) -> Alert | None:
        """The earliest alert, or None when nothing fired."""
        return self.alerts[0] if self.alerts else None

    def plot(self, metric: str | None = None) -> Any:
        """The report drawn: the metric against its limits, with alerts and drift (see plots.plot_report)."""
        from .plots import plot_report

        return plot_report(self.report, self.settings, metric)

    def __str__(self) -> str:
        weeks = len(self.report) - self.settings.windows.reference_weeks
        head = f"Monitored {weeks} weeks after a {self.settings.windows.reference_weeks}-week reference window: "
        if not self.alerts:
            return head + "no alert."
        return head + f"{len(self.alerts)} alert(s).\n" + "\n".join(f"- {a.message}" for a in self.alerts)


def _alerts_for(rule: AlertRule, report: pd.DataFrame, charts: dict[str, ControlChart],
                settings: MonitorSettings) -> tuple[pd.Series, list[Alert]]:
    chart = charts.get(rule.metric)
    worse_when = settings.worse_when(rule.metric)
    start = settings.windows.reference_weeks
    values = report[rule.metric].to_numpy(dtype="float64")
    firing = pd.Series(fires(rule.trigger, values, chart.z if chart else None, worse_when, start),
                       index=report.index)
    described = rule.trigger.describe(worse_when)
    weeks = report[settings.week]
    raised = []
    for i in np.flatnonzero(episode_starts(firing).to_numpy()):
        began = None
        if chart is not None and rule.trigger.kind != "level":
            began = weeks.iloc[decline_start(chart.z, int(i), worse_when, start)]
        raised.append(Alert(weeks.iloc[i], rule.name, rule.metric, float(values[i]), described, rule.owner,
                            rule.action, began, alert_message(rule, weeks.iloc[i], float(values[i]), described,
                                                              began)))
    return firing, raised


def report_frame(table: pd.DataFrame, charts: dict[str, ControlChart], settings: MonitorSettings) -> pd.DataFrame:
    """The report's measured columns: week, window, totals, rates, measures, control limits, drift."""
    window = np.where(np.arange(len(table)) < settings.windows.reference_weeks, "reference", "current")
    parts = [table[[settings.week]], pd.DataFrame({"window": window}, index=table.index),
             table[list(settings.totals)], rates_frame(table, settings)]
    parts += [table[[m.column]].rename(columns={m.column: m.name}) for m in settings.measures]
    parts += [_chart_columns(chart, table.index) for chart in charts.values()]
    if settings.drift_metrics:
        parts.append(drift_columns(table, settings))
    report = pd.concat(parts, axis=1)
    return report.loc[:, ~report.columns.duplicated()]


def run_monitor(weekly: pd.DataFrame, rules: Iterable[AlertRule] = DEFAULT_RULES,
                settings: MonitorSettings = CAMPAIGN) -> Monitoring:
    """Run the monitor over a weekly table: the report, and the alerts the rules raise."""
    table = check_weekly(weekly, settings)
    checked = check_rules(rules, settings)
    charts = control_charts(table, settings)
    report = report_frame(table, charts, settings)
    firing, raised = {}, []
    for rule in checked:
        firing[rule.name], found = _alerts_for(rule, report, charts, settings)
        raised += found
    order = [r.name for r in checked]
    raised.sort(key=lambda a: (a.week, order.index(a.rule)))
    report["firing"] = [
        "; ".join(name for name in order if firing[name].iloc[i]) for i in range(len(report))]
    report["raised"] = ["; ".join(a.rule for a in raised if a.week == w) for w in report[settings.week]]
    return Monitoring(report.reset_index(drop=True), raised, checked, settings)


def weekly_report(weekly: pd.DataFrame, rules: Iterable[AlertRule] = DEFAULT_RULES,
                  settings: MonitorSettings = CAMPAIGN) -> pd.DataFrame:
    """One row per week: counts, rates with Wilson intervals, control limits, drift, and the rules firing."""
    return run_monitor(weekly, rules, settings).report


def alerts(weekly: pd.DataFrame, rules: Iterable[AlertRule] = DEFAULT_RULES,
           settings: MonitorSettings = CAMPAIGN) -> pd.DataFrame:
    """The alerts the rules raise on a weekly table, one row each (empty when all is well)."""
    return run_monitor(weekly, rules, settings).alerts_table()
