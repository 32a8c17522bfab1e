"""Run rules on a control chart: when a metric is out of control, and when its decline began.

A `Trigger` says what pattern fires; `fires` finds the weeks where it does (only after the
reference window); `decline_start` dates the change behind a signal with a one-sided CUSUM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .errors import MonitorError
from .settings import WorseWhen

TriggerKind = Literal["limits", "trend", "level"]


@dataclass(frozen=True)
class Trigger:
    """What fires a rule: `weeks` of the last `out_of` weeks beyond `sigmas` on the bad side, a trend, or a level."""

    kind: TriggerKind = "limits"
    weeks: int = 1
    out_of: int = 1
    sigmas: float = 3.0  # 3: beyond the control limit; 0: on the bad side of the centre line
    level: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("limits", "trend", "level"):
            raise MonitorError(f"Unknown trigger kind {self.kind!r}.", "Use one of the named triggers: "
                               f"{', '.join(NAMED_TRIGGERS)}, or Trigger.level(0.5).")
        if self.kind == "level" and self.level is None:
            raise MonitorError("A level trigger needs a level.", "Write Trigger.level(0.5).")
        if self.weeks < 1 or self.out_of < self.weeks:
            raise MonitorError(f"A trigger of {self.weeks} week(s) out of {self.out_of} cannot fire.",
                               "Use weeks >= 1 and out_of >= weeks, e.g. Trigger.beyond(sigmas=2, weeks=2, out_of=3).")

    @classmethod
    def outside_limits(cls, sigmas: float = 3.0) -> Trigger:
        """One week beyond the control limit on the bad side."""
        return cls("limits", 1, 1, sigmas)

    @classmethod
    def beyond(cls, sigmas: float = 2.0, weeks: int = 2, out_of: int = 3) -> Trigger:
        """`weeks` of the last `out_of` weeks more than `sigmas` standard deviations on the bad side."""
        return cls("limits", weeks, out_of, sigmas)

    @classmethod
    def run(cls, weeks: int = 8) -> Trigger:
        """`weeks` weeks in a row on the bad side of the centre line: a sustained decline."""
        return cls("limits", weeks, weeks, 0.0)

    @classmethod
    def trend(cls, weeks: int = 6) -> Trigger:
        """`weeks` weeks in a row, each worse than the week before."""
        return cls("trend", weeks, weeks, 0.0)

    @classmethod
    def at_level(cls, level: float) -> Trigger:
        """The value reaches a fixed level (at or below it when lower is worse, at or above when higher is)."""
        return cls("level", level=float(level))

    def describe(self, worse_when: WorseWhen = "lower") -> str:
        """The trigger in plain words."""
        side = "below" if worse_when == "lower" else "above"
        if self.kind == "level":
            return f"at or {side} {self.level:g}"
        if self.kind == "trend":
            return f"{self.weeks} weeks in a row, each {worse_when} than the week before"
        if self.sigmas == 0:
            where = f"{side} the centre line"
        elif self.sigmas == 3:
            where = f"{side} the {'lower' if worse_when == 'lower' else 'upper'} control limit"
        else:
            where = f"more than {self.sigmas:g} standard deviations {side} the centre line"
        if self.weeks == self.out_of:
            return f"a week {where}" if self.weeks == 1 else f"{self.weeks} weeks in a row {where}"
        return f"{self.weeks} of the last {self.out_of} weeks {where}"


NAMED_TRIGGERS: dict[str, Trigger] = {
    "outside_limits": Trigger.outside_limits(),
    "two_of_three": Trigger.beyond(2.0, 2, 3),
    "run": Trigger.run(8),
    "trend": Trigger.trend(6),
}


def as_trigger(value: Trigger | str) -> Trigger:
    """A Trigger, or one named in NAMED_TRIGGERS ('outside_limits', 'two_of_three', 'run', 'trend')."""
    if isinstance(value, Trigger):
        return value
    if isinstance(value, str) and value.strip().lower().replace(" ", "_") in NAMED_TRIGGERS:
        return NAMED_TRIGGERS[value.strip().lower().replace(" ", "_")]
    raise MonitorError(f"The trigger {value!r} is not one the monitor knows.",
                       f"Use one of {list(NAMED_TRIGGERS)}, or build one: Trigger.beyond(sigmas=2, weeks=2, "
                       "out_of=3), Trigger.run(weeks=8), Trigger.at_level(0.5).")


def _bad_side(x: np.ndarray, worse_when: WorseWhen) -> np.ndarray:
    """Flip so that larger is always worse; NaN stays NaN."""
    return -x if worse_when == "lower" else x


def fires(trigger: Trigger, values: np.ndarray, z: np.ndarray | None, worse_when: WorseWhen,
          start: int) -> np.ndarray:
    """For each week, whether the trigger fires there; weeks before `start` (the reference) never do."""
    values = np.asarray(values, dtype="float64")
    out = np.zeros(len(values), dtype=bool)
    if trigger.kind == "level":
        bad = _bad_side(values, worse_when) >= _bad_side(np.array(trigger.level, dtype="float64"), worse_when)
        out[start:] = bad[start:]
        return out
    if trigger.kind == "trend":
        worse = np.zeros(len(values), dtype=bool)
        worse[1:] = _bad_side(np.diff(values), worse_when) > 0  # worse than the week before
        for i in range(max(start, 1) + trigger.weeks - 1, len(values)):
            out[i] = worse[i - trigger.weeks + 1: i + 1].all()
        return out
    if z is None:
        raise MonitorError("This metric has no control limits.", "Use a level trigger: Trigger.at_level(...).")
    beyond = _bad_side(np.asarray(z, dtype="float64"), worse_when) > trigger.sigmas  # NaN compares False
    for i in range(start, len(values)):
        window = beyond[max(start, i - trigger.out_of + 1): i + 1]
        out[i] = beyond[i] and window.sum() >= trigger.weeks
    return out


def decline_start(z: np.ndarray, at: int, worse_when: WorseWhen, start: int, slack: float = 0.5) -> int:
    """The week a change began, for a signal at week `at`: one after the last week a one-sided CUSUM was zero.

    The CUSUM adds up each week's distance beyond `slack` standard deviations on the bad side
    (Page's CUSUM with k = 0.5); it resets to zero whenever the metric looks normal again.
    """
    bad = np.nan_to_num(_bad_side(np.asarray(z, dtype="float64"), worse_when), nan=0.0, posinf=1e6, neginf=-1e6)
    cusum, began = 0.0, start
    for i in range(start, at + 1):
        cusum = max(0.0, cusum + bad[i] - slack)
        if cusum == 0.0:
            began = i + 1
    return min(began, at)
