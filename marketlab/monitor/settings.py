"""What the monitor watches and how: the rates, measures and mixes of a weekly table, and its windows.

Settings are small frozen records grouped by concern; `CAMPAIGN` (in presets.py) describes
`campaign_weekly.csv`, `runs_settings` (in runs.py) a weekly table made from workflow results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Literal

from .errors import MonitorError

WorseWhen = Literal["lower", "higher"]
DRIFT_SHARE = "drift_share"


def _check_worse_when(name: str, worse_when: str) -> None:
    if worse_when not in ("lower", "higher"):
        raise MonitorError(f"'{name}': worse_when is {worse_when!r}.",
                           "Say which way is bad: worse_when='lower' (a rate that should stay high) or 'higher'.")


@dataclass(frozen=True)
class Rate:
    """An effectiveness rate: the week's `successes` out of its `trials`, both count columns."""

    name: str
    successes: str
    trials: str
    worse_when: WorseWhen = "lower"

    def __post_init__(self) -> None:
        _check_worse_when(self.name, self.worse_when)


@dataclass(frozen=True)
class Measure:
    """A number per week that is not a share, such as words per reply or cost per row."""

    name: str
    column: str
    worse_when: WorseWhen = "higher"

    def __post_init__(self) -> None:
        _check_worse_when(self.name, self.worse_when)


@dataclass(frozen=True)
class Mix:
    """A mix of the audience (segments, new vs returning): share columns weighted by a count, or count columns."""

    name: str
    columns: tuple[str, ...]
    weight: str | None = None  # a count column that turns the week's shares into counts; None: the columns are counts

    def __post_init__(self) -> None:
        if len(self.columns) < 2:
            raise MonitorError(f"The mix '{self.name}' has {len(self.columns)} column(s).",
                               "A mix needs at least two parts, e.g. columns=('share_new_customers', "
                               "'share_returning_customers').")

    @property
    def key(self) -> str:
        """The mix's name as used in report columns ('segment mix' -> 'segment_mix')."""
        return re.sub(r"\W+", "_", self.name.strip().lower()).strip("_")

    @property
    def psi_metric(self) -> str:
        """The report column holding this mix's population stability index."""
        return f"{self.key}_psi"


@dataclass(frozen=True)
class Windows:
    """The reference window (the first weeks, when things worked) and the current window drift looks at."""

    # Half a year. A shorter reference estimates the centre line less well: on the stable holdout
    # series, 16 or 20 reference weeks already raise false alarms.
    reference_weeks: int = 26
    current_weeks: int = 4

    def __post_init__(self) -> None:
        if self.reference_weeks < 4:
            raise MonitorError(f"reference_weeks is {self.reference_weeks}.",
                               "Use at least 4 reference weeks: control limits need a few weeks to measure the "
                               "normal week-to-week variation.")
        if self.current_weeks < 1:
            raise MonitorError(f"current_weeks is {self.current_weeks}.", "Use current_weeks=1 or more.")


@dataclass(frozen=True)
class ChartSettings:
    """Control limits: how wide (in standard deviations) and whether to allow for extra week-to-week variation."""

    sigmas: float = 3.0
    # Laney p'-chart: with tens of thousands of trials a week the plain p-chart's limits are far
    # narrower than the real week-to-week noise, and every week would be "out of control".
    overdispersion: bool = True
    confidence: float = 0.95  # of the Wilson interval around each week's rate

    def __post_init__(self) -> None:
        if not 0 < self.confidence < 1:
            raise MonitorError(f"confidence is {self.confidence}.", "Use a share between 0 and 1, e.g. 0.95.")
        if self.sigmas <= 0:
            raise MonitorError(f"sigmas is {self.sigmas}.", "Use a positive width, e.g. sigmas=3.")


@dataclass(frozen=True)
class DriftSettings:
    """When a feature counts as drifted, and when the whole table does (Evidently's drift share)."""

    psi_threshold: float = 0.1  # Evidently's default: PSI of 0.1 or more is drift
    p_value: float = 0.05  # for the chi-square and KS tests
    # What decides drift for a mix. Weekly traffic is in the hundreds of thousands: with that many,
    # chi-square calls every small wobble significant, so the size of the shift (PSI) decides.
    mix_method: Literal["psi", "chi-square"] = "psi"
    drift_share: float = 0.5  # the table has drifted when at least this share of its features drifted

    def __post_init__(self) -> None:
        if self.mix_method not in ("psi", "chi-square"):
            raise MonitorError(f"mix_method is {self.mix_method!r}.", "Use mix_method='psi' or 'chi-square'.")
        if not 0 < self.drift_share <= 1 or not 0 < self.p_value < 1 or self.psi_threshold <= 0:
            raise MonitorError(f"Drift settings out of range: drift_share={self.drift_share}, "
                               f"p_value={self.p_value}, psi_threshold={self.psi_threshold}.",
                               "Use 0 < drift_share <= 1, 0 < p_value < 1 and a positive psi_threshold.")


@dataclass(frozen=True)
class MonitorSettings:
    """Which columns the monitor reads and how it measures them."""

    week: str = "week_start"
    rates: tuple[Rate, ...] = ()
    measures: tuple[Measure, ...] = ()
    mixes: tuple[Mix, ...] = ()
    numeric: tuple[str, ...] = ()  # numeric features compared reference vs current with the KS test
    totals: tuple[str, ...] = ()  # counts drawn beside the rate (traffic, clicks...)
    windows: Windows = field(default_factory=Windows)
    chart: ChartSettings = field(default_factory=ChartSettings)
    drift: DriftSettings = field(default_factory=DriftSettings)

    def __post_init__(self) -> None:
        names = [m.name for m in self._metrics()] + [m.psi_metric for m in self.mixes]
        repeated = sorted({n for n in names if names.count(n) > 1} | ({DRIFT_SHARE} & set(names)))
        if repeated:
            raise MonitorError(f"The metric name(s) {repeated} are used twice.", "Give every rate, measure and mix "
                               "its own name ('drift_share' is taken by the drift share).")

    @property
    def charted(self) -> dict[str, Rate | Measure]:
        """Metrics with control limits, by name."""
        return {m.name: m for m in self._metrics()}

    def _metrics(self) -> tuple[Rate | Measure, ...]:
        return (*self.rates, *self.measures)

    @property
    def drift_metrics(self) -> list[str]:
        """Metrics a level trigger can watch: each mix's PSI, and the drift share."""
        if not self.mixes and not self.numeric:
            return []
        return [m.psi_metric for m in self.mixes] + [DRIFT_SHARE]

    def worse_when(self, metric: str) -> WorseWhen:
        """Which way is bad for a metric (drift is always worse when higher)."""
        charted = self.charted.get(metric)
        return charted.worse_when if charted is not None else "higher"

    @property
    def metrics(self) -> list[str]:
        """Every metric an alert rule can name."""
        return [*self.charted, *self.drift_metrics]

    def with_windows(self, reference_weeks: int | None = None, current_weeks: int | None = None) -> MonitorSettings:
        """These settings with other reference and/or current windows."""
        return replace(self, windows=Windows(reference_weeks or self.windows.reference_weeks,
                                             current_weeks or self.windows.current_weeks))
