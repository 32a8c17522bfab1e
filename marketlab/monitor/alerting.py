"""Alert rules with an owner and an action, and the alerts they raise.

A rule fires in a week when its trigger holds there; an alert is raised in the first week of
each spell of firing (not again every week while it lasts), dated with the week the change began.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import pandas as pd

from .errors import MonitorError
from .settings import MonitorSettings
from .signals import Trigger, as_trigger
from .table import week_label

Action = Literal["review", "retrain", "rewrite the prompt", "switch off"]
ACTIONS: tuple[str, ...] = get_args(Action)


@dataclass(frozen=True)
class AlertRule:
    """Who acts, and how, when a metric shows a pattern: name, metric, trigger, owner, action.

    `trigger` may also be the name of a ready-made one ('two_of_three', 'run', ...: NAMED_TRIGGERS);
    `action` is one of ACTIONS. A rule without an owner or an action is refused.
    """

    name: str
    metric: str
    trigger: Trigger
    owner: str = ""
    action: str = ""

    def __post_init__(self) -> None:
        label = f"The alert rule {self.name!r}" if str(self.name).strip() else "An alert rule"
        if not str(self.name).strip():
            raise MonitorError("An alert rule has no name.", "Give it a short name, e.g. name='Rate falling'.")
        if not str(self.metric).strip():
            raise MonitorError(f"{label} watches no metric.", "Name the column it watches, e.g. "
                               "metric='effectiveness_rate'.")
        if not str(self.owner).strip():
            raise MonitorError(f"{label} has no owner: nobody would act on the alert.",
                               "Name the person or team who acts on it, e.g. owner='CRM lead'.")
        action = " ".join(str(self.action).lower().split())
        if action not in ACTIONS:
            said = "has no action" if not action else f"has the action {self.action!r}"
            raise MonitorError(f"{label} {said}.", f"Say what the owner does when it fires: one of "
                               f"{', '.join(repr(a) for a in ACTIONS)}.")
        object.__setattr__(self, "action", action)
        object.__setattr__(self, "trigger", as_trigger(self.trigger))
        object.__setattr__(self, "owner", str(self.owner).strip())

    def describe(self, settings: MonitorSettings) -> str:
        """The rule in one plain sentence."""
        return (f"{self.name}: when {self.metric} is {self.trigger.describe(settings.worse_when(self.metric))}, "
                f"{self.owner} does: {self.action}.")


@dataclass(frozen=True)
class Alert:
    """One alert: the week it was raised, the rule, the value, who acts and how, and when the change began."""

    week: Any
    rule: str
    metric: str
    value: float
    trigger: str
    owner: str
    action: str
    began: Any | None  # the first week of the change (None for level triggers)
    message: str


def check_rules(rules: Any, settings: MonitorSettings) -> list[AlertRule]:
    """The rules as a list, each naming a metric the settings measure with a trigger that suits it."""
    if isinstance(rules, AlertRule):
        rules = [rules]
    rules = list(rules)
    wrong = [r for r in rules if not isinstance(r, AlertRule)]
    if wrong:
        raise MonitorError(f"The rules should be AlertRule records, but one is {type(wrong[0]).__name__}.",
                           "Write each as AlertRule(name=..., metric=..., trigger=..., owner=..., action=...).")
    names = [r.name for r in rules]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise MonitorError(f"Two alert rules are called {twice[0]!r}.", "Give every rule its own name.")
    for rule in rules:
        if rule.metric not in settings.metrics:
            raise MonitorError(f"The alert rule {rule.name!r} watches {rule.metric!r}, which the monitor does "
                               f"not measure. It measures: {settings.metrics}.",
                               "Use one of those names, or add the metric to the settings (rates=, measures=).")
        if rule.metric not in settings.charted and rule.trigger.kind != "level":
            raise MonitorError(f"The alert rule {rule.name!r} uses a control-limit trigger on {rule.metric!r}, "
                               "which has no control limits.", "Use a level, e.g. Trigger.at_level(0.5).")
    return rules


def episode_starts(firing: pd.Series) -> pd.Series:
    """True in the first week of each spell of consecutive firing weeks."""
    before = firing.shift(1, fill_value=False).astype(bool)
    return firing & ~before


def alert_message(rule: AlertRule, week: Any, value: float, trigger: str, began: Any | None) -> str:
    """The alert in plain English, for the owner."""
    since = f" The change began {week_label(began)}." if began is not None else ""
    return (f"{week_label(week).capitalize()}: {rule.metric} {value:.4g} — {trigger}.{since} "
            f"{rule.owner}: {rule.action}.")


def alerts_table(alerts: list[Alert]) -> pd.DataFrame:
    """Alerts as a DataFrame, one row each, in week order."""
    columns = list(Alert.__dataclass_fields__)
    return pd.DataFrame([asdict(a) for a in alerts], columns=columns)
