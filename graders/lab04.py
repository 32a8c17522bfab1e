"""Hidden tests for Lab 4: the learner's rules and monitor.py on the holdout series, in the sandbox.

The holdout series (graders/holdout/campaign_weekly_*.csv) are another company's: one degrades
from the week of 2021-08-30 (week index 34), one never changes. Only the tables go to the
learner's side; when the change began, and which series is stable, stay here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from marketlab import data
from marketlab.checks import CheckResult, lab04
from marketlab.grading.notebook_values import grade_value, read_value

HOLDOUT_DIR = Path(__file__).resolve().parent / "holdout"
HOLDOUT_CHANGE = "2021-08-30"
WORKFLOW_CHANGE_WEEK = 8


def holdout_series() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The degrading and the stable holdout series."""
    return (data.load("campaign_weekly_degrading", directory=HOLDOUT_DIR),
            data.load("campaign_weekly_stable", directory=HOLDOUT_DIR))


def holdout_runs() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Weekly workflow runs on the holdout catalogue: one with a model change, one without."""
    from marketlab.monitor import from_runs

    products = data.load("products", directory=HOLDOUT_DIR)
    changed = lab04.simulated_weekly_runs(products, weeks=14, change_week=WORKFLOW_CHANGE_WEEK, seed=5)
    stable = lab04.simulated_weekly_runs(products, weeks=14, change_week=99, seed=6)
    return from_runs(changed, week="week"), from_runs(stable, week="week")


def grade_rate(sub: Any) -> CheckResult:
    """weekly_rate on the holdout series."""
    return lab04.check_rate(sub.function("weekly_rate"), holdout_series(), strict=False, quiet=True)


def grade_decline(sub: Any) -> CheckResult:
    """The learner read the lab's chart: the week the decline began (a reading of the lab's own data)."""
    return grade_value(sub, "DECLINE_BEGAN", lab04.check_decline, "decline",
                       "DECLINE_BEGAN names the week the rate started to fall", data.load("campaign_weekly"))


def grade_segment(sub: Any) -> CheckResult:
    """The learner read the lab's drift report: the share that changed most."""
    return grade_value(sub, "GROWING_SEGMENT", lab04.check_segment, "segment",
                       "GROWING_SEGMENT names the share that changed most", data.load("campaign_weekly"))


def grade_rules(sub: Any) -> CheckResult:
    """The learner's rules (their monitor function, in their kernel) on the two holdout series."""
    changed, stable = holdout_series()
    count = read_value(sub, "RULE_COUNT")
    return lab04.check_rules(sub.function("monitor"), changed, stable, HOLDOUT_CHANGE,
                             rule_count=count if isinstance(count, int) else None, strict=False, quiet=True)


def grade_workflow_rules(sub: Any) -> CheckResult:
    """The learner's workflow rules on holdout weekly runs, with and without a model change."""
    changed, stable = holdout_runs()
    return lab04.check_workflow_rules(sub.function("monitor_workflow"), changed, stable, WORKFLOW_CHANGE_WEEK,
                                      strict=False, quiet=True)


def grade_monitor(sub: Any) -> CheckResult:
    """monitor.py from the submission, in a fresh sandbox, on the holdout series."""
    changed, stable = holdout_series()
    return lab04.check_monitor(changed, stable, HOLDOUT_CHANGE, sub.folder, harness=sub.harness,
                               strict=False, quiet=True)


GRADERS = {"check-rate": grade_rate, "check-decline": grade_decline, "check-segment": grade_segment,
           "check-rules": grade_rules, "check-workflow-rules": grade_workflow_rules, "check-monitor": grade_monitor}
