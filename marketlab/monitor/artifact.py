"""Save a monitor as one importable file, monitor.py, with monitor(weekly_df) -> alerts DataFrame.

The file holds the alert rules (each with its owner and action) and the settings that say which
columns are counts, rates and mixes. It imports only marketlab and pandas, so it runs in a
scheduled job or in the grader. Writing, importing it back and loading it is
marketlab.artifacts.ModuleFile, shared with Labs 2 and 3.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from marketlab import artifacts

from .alerting import AlertRule
from .errors import MonitorError
from .signals import Trigger

MONITOR_FILE = "monitor.py"
FILE = artifacts.ModuleFile(MONITOR_FILE, "monitor", "monitor", "Lab 4's save cell")

TEMPLATE = '''"""Alerts for a weekly table: a monitor saved from marketlab Lab 4.

    import monitor
    alerts = monitor.monitor(weekly_df)     # one row per alert: week, rule, owner, action, when it began
    monitor.RULES                           # who acts, and how, on which pattern

weekly_df has one row per week with the columns of campaign_weekly.csv. Edit the notebook and
save again rather than editing this file by hand.
"""

from __future__ import annotations

import pandas as pd

from marketlab.monitor import CAMPAIGN, AlertRule, Trigger, run_monitor  # noqa: F401

RULES = [
{rules}
]

SETTINGS = CAMPAIGN


def monitor(weekly_df: pd.DataFrame) -> pd.DataFrame:
    """Run every rule on the weekly table; one row per alert, each naming its owner and action."""
    return run_monitor(weekly_df, RULES, SETTINGS).alerts_table()
'''


RUNS_TEMPLATE = '''"""Alerts for a workflow's weekly results: a monitor saved from the marketlab capstone.

    import monitor
    alerts = monitor.monitor(results_df)    # one row per alert: week, rule, owner, action, when it began
    monitor.RULES                           # who acts, and how, on which pattern

results_df is the workflow's results (what `marketlab run` writes) gathered over the weeks, with a
`week` column saying when each row was run. Edit the notebook and save again rather than editing
this file by hand.
"""

from __future__ import annotations

import pandas as pd

from marketlab.monitor import AlertRule, Trigger, from_runs, run_monitor, runs_settings  # noqa: F401

RULES = [
{rules}
]


def monitor(results_df: pd.DataFrame) -> pd.DataFrame:
    """Every rule on the weekly rates of the results; one row per alert, each naming its owner and action."""
    weekly = from_runs(results_df, week="week")
    settings = runs_settings(weekly)
    rules = [rule for rule in RULES if rule.metric in settings.metrics]
    return run_monitor(weekly, rules, settings).alerts_table()
'''


def rule_source(rule: AlertRule) -> str:
    """The Python call that rebuilds an alert rule, checked by rebuilding it."""
    source = repr(rule)
    if eval(source, {"AlertRule": AlertRule, "Trigger": Trigger}) != rule:  # noqa: S307 - our own dataclass repr
        raise artifacts.ArtifactError(f"The alert rule {rule.name!r} cannot be saved to a file.",
                                      "Write it with AlertRule(...) and a Trigger such as Trigger.run(weeks=8).")
    return source


def monitor_source(rules: Sequence[Any], runs: bool = False) -> str:
    """The text of monitor.py for these rules (runs=True: over a workflow's results, not a campaign table)."""
    rules = list(rules)
    if not rules:
        raise artifacts.ArtifactError("RULES is empty: the monitor would never raise an alert.",
                                      "Write at least one AlertRule in RULES.")
    wrong = [r for r in rules if not isinstance(r, AlertRule)]
    if wrong:
        raise MonitorError(f"RULES holds a {type(wrong[0]).__name__}, not an AlertRule.",
                           "Write each rule as AlertRule(name=..., metric=..., trigger=..., owner=..., action=...).")
    return (RUNS_TEMPLATE if runs else TEMPLATE).format(rules="\n".join(f"    {rule_source(r)}," for r in rules))


def save_monitor(rules: Sequence[Any], here: str | Path | None = None) -> list[Path]:
    """Write monitor.py next to the notebook (and to the shared folder) and import it back to check it."""
    return FILE.save(monitor_source(rules), here)


def load_monitor(path: str | Path | None = None) -> ModuleType:
    """Import a saved monitor.py (default: the one next to the notebook) as a module."""
    return FILE.load(path)


__all__ = ["load_monitor", "monitor_source", "rule_source", "save_monitor"]
