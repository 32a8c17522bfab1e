"""marketlab.monitor: keep a marketing AI system working months after launch.

Watch effectiveness **rates**, not counts; compare the **current** window with a **reference**
window for drift; put every rate on a control chart with run rules; and give every alert rule an
owner and an action.

    from marketlab import data
    from marketlab.monitor import AlertRule, Trigger, run_monitor, plot_counts_and_rate

    weekly = data.load("campaign_weekly")
    plot_counts_and_rate(weekly)                 # clicks grow while the rate falls
    result = run_monitor(weekly)                 # DEFAULT_RULES on the CAMPAIGN settings
    result.alerts_table()                        # week, rule, owner, action, when the change began
    result.report                                # one row per week: rates, limits, drift, rules firing
    result.plot()

    rule = AlertRule("Rate dropping", "effectiveness_rate", Trigger.beyond(sigmas=2, weeks=2, out_of=3),
                     owner="CRM lead", action="review")

The same monitor on a workflow's weekly results (a `week` column added to run_batch's table):

    weekly_runs = from_runs(results, week="week")
    run_monitor(weekly_runs, RUNS_RULES, runs_settings(weekly_runs))
"""

from __future__ import annotations

from .alerting import ACTIONS, Alert, AlertRule, alerts_table
from .control import ControlChart, individuals_chart, p_chart
from .drift import DriftReport, FeatureDrift, drift, drift_between, mix_drift, numeric_drift, psi, psi_contributions
from .errors import MonitorError
from .plots import plot_counts_and_rate, plot_report
from .presets import CAMPAIGN, DEFAULT_RULES, RUNS_RULES
from .rates import weekly_rates, wilson_interval
from .report import Monitoring, alerts, run_monitor, weekly_report
from .runs import REFUSAL_OPENERS, from_runs, is_refusal, runs_settings
from .settings import ChartSettings, DriftSettings, Measure, Mix, MonitorSettings, Rate, Windows
from .signals import NAMED_TRIGGERS, Trigger, decline_start, fires
from .table import check_weekly

__all__ = [
    "ACTIONS", "Alert", "AlertRule", "CAMPAIGN", "ChartSettings", "ControlChart", "DEFAULT_RULES", "DriftReport",
    "DriftSettings", "FeatureDrift", "Measure", "Mix", "MonitorError", "MonitorSettings", "Monitoring",
    "NAMED_TRIGGERS", "REFUSAL_OPENERS", "RUNS_RULES", "Rate", "Trigger", "Windows", "alerts", "alerts_table",
    "check_weekly", "decline_start", "drift", "drift_between", "fires", "from_runs", "individuals_chart",
    "is_refusal", "mix_drift", "numeric_drift", "p_chart", "plot_counts_and_rate", "plot_report", "psi",
    "psi_contributions", "run_monitor", "runs_settings", "weekly_rates", "weekly_report", "wilson_interval",
]
