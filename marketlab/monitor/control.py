"""Control limits set on the reference window: a p-chart for rates, an individuals chart for other measures.

Both put each week on one scale, `z`: how many standard deviations it lies from the centre line,
so the run rules in signals.py read every metric the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# d2 for moving ranges of two: the average moving range is 1.128 standard deviations.
D2 = 1.128


@dataclass(frozen=True)
class ControlChart:
    """One metric week by week, its centre line and its standard deviation each week (from the reference)."""

    metric: str
    values: np.ndarray
    centre: float
    sigma: np.ndarray  # one standard deviation, per week (a p-chart's depends on that week's trials)
    reference_weeks: int
    sigmas: float = 3.0  # width of the control limits
    bounded: bool = False  # a rate: limits stay within 0 and 1

    @property
    def lower(self) -> np.ndarray:
        """The lower control limit, per week."""
        low = self.centre - self.sigmas * self.sigma
        return np.clip(low, 0.0, 1.0) if self.bounded else low

    @property
    def upper(self) -> np.ndarray:
        """The upper control limit, per week."""
        high = self.centre + self.sigmas * self.sigma
        return np.clip(high, 0.0, 1.0) if self.bounded else high

    @property
    def z(self) -> np.ndarray:
        """Each week's distance from the centre line in standard deviations (NaN for a week with no value)."""
        gap = self.values - self.centre
        with np.errstate(divide="ignore", invalid="ignore"):
            z = gap / self.sigma
        # A reference with no variation at all: any change is infinitely far, no change is 0.
        flat = (self.sigma == 0) & ~np.isnan(gap)
        return np.where(flat, np.sign(gap) * np.where(gap == 0, 0.0, np.inf), z)


def _moving_range_sigma(values: np.ndarray) -> float:
    """Short-term standard deviation from the average moving range of consecutive values (blanks skipped)."""
    kept = values[~np.isnan(values)]
    if len(kept) < 2:
        return float("nan")
    return float(np.mean(np.abs(np.diff(kept))) / D2)


def p_chart(metric: str, successes: np.ndarray, trials: np.ndarray, reference_weeks: int, *,
            overdispersion: bool = True, sigmas: float = 3.0) -> ControlChart:
    """A p-chart of successes/trials with centre and limits from the first `reference_weeks` weeks.

    With ``overdispersion`` it is Laney's p'-chart: the binomial standard deviation is scaled by the
    week-to-week variation of the reference weeks (never below the binomial one).
    """
    k, n = np.asarray(successes, dtype="float64"), np.asarray(trials, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n > 0, k / n, np.nan)
    ref_k, ref_n = k[:reference_weeks].sum(), n[:reference_weeks].sum()
    centre = ref_k / ref_n if ref_n > 0 else float("nan")
    # A reference with no successes (or no failures) would give limits of zero width: estimate the
    # spread with one pseudo-success in two pseudo-trials instead (Laplace), keeping the centre line.
    spread = centre if 0 < ref_k < ref_n else (ref_k + 1) / (ref_n + 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        binomial = np.where(n > 0, np.sqrt(spread * (1 - spread) / n), np.nan)
    scale = 1.0
    if overdispersion:
        z_ref = (p[:reference_weeks] - centre) / binomial[:reference_weeks]
        spread_z = _moving_range_sigma(z_ref)
        scale = max(1.0, spread_z) if np.isfinite(spread_z) else 1.0
    return ControlChart(metric, p, float(centre), binomial * scale, reference_weeks, sigmas, bounded=True)


def individuals_chart(metric: str, values: np.ndarray, reference_weeks: int, *, sigmas: float = 3.0) -> ControlChart:
    """An individuals (XmR) chart: centre is the reference mean, sigma from its average moving range."""
    x = np.asarray(values, dtype="float64")
    ref = x[:reference_weeks]
    centre = float(np.nanmean(ref)) if not np.all(np.isnan(ref)) else float("nan")
    sigma = _moving_range_sigma(ref)
    return ControlChart(metric, x, centre, np.full(len(x), sigma), reference_weeks, sigmas)
