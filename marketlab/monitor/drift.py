"""Drift: is the current window's population still the reference window's? (Evidently's vocabulary.)

- a **mix** (segments, new vs returning) is compared with the population stability index (PSI)
  and a chi-square test, with each segment's contribution to both;
- a **numeric feature** is compared with the two-sample Kolmogorov-Smirnov test;
- the **drift share** is the share of features that drifted; the table's drift is detected when
  it reaches the settings' drift_share (0.5 by default, as in Evidently).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2_contingency, ks_2samp

from .errors import MonitorError
from .presets import CAMPAIGN
from .settings import DriftSettings, Mix, MonitorSettings, Windows
from .table import check_weekly, week_label

# Empty segments would make the logarithm infinite; Evidently uses the same floor.
SHARE_FLOOR = 1e-4


def _shares(counts: Any) -> np.ndarray:
    values = np.asarray(counts, dtype="float64")
    total = values.sum()
    if total <= 0:
        raise MonitorError("A window has no counts at all for this mix.", "Check the weights of those weeks.")
    return np.clip(values / total, SHARE_FLOOR, None)


def psi_contributions(reference: Any, current: Any) -> np.ndarray:
    """Each segment's part of the PSI: (current share - reference share) * ln(current / reference)."""
    ref, cur = _shares(reference), _shares(current)
    return (cur - ref) * np.log(cur / ref)


def psi(reference: Any, current: Any) -> float:
    """Population stability index of two mixes (counts or shares): 0 is identical, 0.1 or more is drift."""
    return float(psi_contributions(reference, current).sum())


def _chi_square(reference: np.ndarray, current: np.ndarray) -> tuple[float, np.ndarray]:
    """Chi-square test of two windows' counts: the p-value and each segment's part of the statistic."""
    table = np.vstack([reference, current]).astype("float64")
    used = table.sum(axis=0) > 0  # a segment empty in both windows has no expected count
    result = chi2_contingency(table[:, used], correction=False)
    parts = np.zeros(table.shape[1])
    parts[used] = ((table[:, used] - result.expected_freq) ** 2 / result.expected_freq).sum(axis=0)
    return float(result.pvalue), parts


def contributions_table(segments: tuple[str, ...], reference: np.ndarray, current: np.ndarray) -> pd.DataFrame:
    """Each segment of a mix: reference and current share, change, its part of the PSI and of chi-square."""
    parts = psi_contributions(reference, current)
    total = float(parts.sum())
    out = pd.DataFrame({
        "segment": list(segments), "reference_share": reference / reference.sum(),
        "current_share": current / current.sum(), "psi_contribution": parts,
        "psi_share": parts / total if total > 0 else 0.0,
        "chi_square_contribution": _chi_square(reference, current)[1],
    })
    out.insert(3, "change", out["current_share"] - out["reference_share"])
    return out.sort_values("psi_contribution", ascending=False, ignore_index=True)


@dataclass(frozen=True)
class FeatureDrift:
    """One feature, reference vs current: the score that decides, the test, and whether drift is detected."""

    feature: str
    kind: str  # "mix" or "numeric"
    method: str  # what decided: "psi", "chi-square" or "ks"
    score: float  # the PSI, or the p-value of the test that decided
    threshold: float
    drift_detected: bool
    psi: float | None = None
    p_value: float | None = None


@dataclass(frozen=True)
class MixCounts:
    """A mix's counts per segment in the reference and the current window."""

    segments: tuple[str, ...]
    reference: np.ndarray
    current: np.ndarray


def drift_share(features: list[FeatureDrift]) -> float:
    """The share of features whose drift is detected."""
    return sum(f.drift_detected for f in features) / len(features) if features else 0.0


@dataclass(frozen=True)
class DriftReport:
    """Drift of every feature between a reference and a current window, and the share that drifted."""

    reference: tuple[Any, Any]  # first and last week
    current: tuple[Any, Any]
    features: list[FeatureDrift]
    mixes: dict[str, MixCounts] = field(default_factory=dict)
    drift_share: float = 0.0
    drift_detected: bool = False

    @property
    def contributions(self) -> dict[str, pd.DataFrame]:
        """Per mix, one row per segment, the biggest part of the PSI first."""
        return {name: contributions_table(m.segments, m.reference, m.current) for name, m in self.mixes.items()}

    def table(self) -> pd.DataFrame:
        """One row per feature."""
        return pd.DataFrame([f.__dict__ for f in self.features])

    def summary(self) -> str:
        """The report in a few plain sentences."""
        def span(pair: tuple[Any, Any]) -> str:
            return f"{week_label(pair[0])} to {week_label(pair[1])}"

        drifted = sum(f.drift_detected for f in self.features)
        lines = [f"Reference: {span(self.reference)}. Current: {span(self.current)}.",
                 f"Drift detected in {drifted} of {len(self.features)} feature(s) (drift share "
                 f"{self.drift_share:.0%}): " + ("the population has changed." if self.drift_detected
                                                 else "no dataset drift.")]
        for name, parts in self.contributions.items():
            top = parts.iloc[0]
            lines.append(f"{name}: the biggest change is {top['segment']} ({top['reference_share']:.0%} -> "
                         f"{top['current_share']:.0%}), {top['psi_share']:.0%} of the PSI.")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def counts_by_row(rows: pd.DataFrame, mix: Mix) -> np.ndarray:
    """A mix's counts, one row per table row: share columns times the weight, or the count columns."""
    parts = rows[list(mix.columns)].to_numpy(dtype="float64")
    if mix.weight:
        parts = parts * rows[mix.weight].to_numpy(dtype="float64")[:, None]
    return parts


def mix_drift(name: str, reference: np.ndarray, current: np.ndarray,
              settings: DriftSettings = DriftSettings()) -> FeatureDrift:
    """PSI and chi-square test of one mix, from its reference and current counts per segment."""
    total = psi(reference, current)
    p_value = _chi_square(reference, current)[0]
    if settings.mix_method == "psi":
        detected, score, threshold = total >= settings.psi_threshold, total, settings.psi_threshold
    else:
        detected, score, threshold = p_value < settings.p_value, p_value, settings.p_value
    return FeatureDrift(name, "mix", settings.mix_method, float(score), threshold, bool(detected), psi=total,
                        p_value=p_value)


def numeric_drift(feature: str, reference: pd.Series, current: pd.Series,
                  settings: DriftSettings = DriftSettings()) -> FeatureDrift:
    """Two-sample Kolmogorov-Smirnov test of one numeric feature, reference values vs current values."""
    ref = pd.to_numeric(reference, errors="coerce").dropna()
    cur = pd.to_numeric(current, errors="coerce").dropna()
    if ref.empty or cur.empty:
        raise MonitorError(f"The feature '{feature}' has no numbers in the "
                           f"{'reference' if ref.empty else 'current'} window.",
                           "Choose windows where the feature is filled in.")
    p_value = float(ks_2samp(ref.to_numpy(), cur.to_numpy()).pvalue)
    return FeatureDrift(feature, "numeric", "ks", p_value, settings.p_value, p_value < settings.p_value,
                        p_value=p_value)


def drift_between(reference: pd.DataFrame, current: pd.DataFrame, settings: MonitorSettings) -> DriftReport:
    """Compare two windows of rows (weeks, or workflow rows) on the settings' mixes and numeric features."""
    if not settings.mixes and not settings.numeric:
        raise MonitorError("These settings name no features to compare.",
                           "Add mixes=(Mix(...),) or numeric=('column',) to the MonitorSettings.")
    counts = {mix.name: MixCounts(mix.columns, counts_by_row(reference, mix).sum(axis=0),
                                  counts_by_row(current, mix).sum(axis=0)) for mix in settings.mixes}
    features = [mix_drift(name, m.reference, m.current, settings.drift) for name, m in counts.items()]
    features += [numeric_drift(c, reference[c], current[c], settings.drift) for c in settings.numeric]
    share = drift_share(features)
    week = settings.week

    def span(rows: pd.DataFrame) -> tuple[Any, Any]:
        return (rows[week].iloc[0], rows[week].iloc[-1]) if week in rows.columns else (None, None)

    return DriftReport(span(reference), span(current), features, counts, share,
                       share >= settings.drift.drift_share)


def current_start(end: int, windows: Windows) -> int:
    """Where the current window ending at position `end` starts: current_weeks back, never inside the reference."""
    return max(windows.reference_weeks, end - windows.current_weeks + 1)


def drift(weekly: pd.DataFrame, settings: MonitorSettings = CAMPAIGN, current_end: Any = None) -> DriftReport:
    """Drift of the latest weeks (or of the window ending at the week `current_end`) against the reference."""
    table = check_weekly(weekly, settings)
    end = len(table) - 1
    if current_end is not None:
        weeks = table[settings.week]
        wanted = pd.Timestamp(current_end) if isinstance(weeks.iloc[0], pd.Timestamp) else current_end
        found = np.flatnonzero((weeks == wanted).to_numpy())
        first = settings.windows.reference_weeks
        if len(found) == 0 or found[0] < first:
            raise MonitorError(f"{week_label(wanted).capitalize()} is not a week after the reference window.",
                               f"Pick a week from {week_label(weeks.iloc[first])} on.")
        end = int(found[0])
    reference = table.iloc[: settings.windows.reference_weeks]
    return drift_between(reference, table.iloc[current_start(end, settings.windows): end + 1], settings)
