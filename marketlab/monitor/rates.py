"""Rates, not counts: each week's successes out of its trials, with a Wilson confidence interval."""

from __future__ import annotations

import math

import pandas as pd
from scipy.stats import binomtest

from .presets import CAMPAIGN
from .settings import MonitorSettings, Rate
from .table import check_weekly


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson interval for successes out of trials (NaN, NaN when there were no trials)."""
    if trials <= 0:
        return math.nan, math.nan
    ci = binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def rate_columns(table: pd.DataFrame, rate: Rate, confidence: float) -> pd.DataFrame:
    """One rate of a checked weekly table: the rate and its interval, as columns `name`, `name_low`, `name_high`."""
    k, n = table[rate.successes].astype("int64"), table[rate.trials].astype("int64")
    bounds = [wilson_interval(s, t, confidence) for s, t in zip(k, n)]
    return pd.DataFrame({
        rate.name: (k / n.where(n > 0)).astype("float64"),
        f"{rate.name}_low": [b[0] for b in bounds],
        f"{rate.name}_high": [b[1] for b in bounds],
    }, index=table.index)


def rates_frame(table: pd.DataFrame, settings: MonitorSettings) -> pd.DataFrame:
    """For each rate of a checked weekly table: its two counts, the rate, and the Wilson interval."""
    parts = []
    for rate in settings.rates:
        parts += [table[[rate.successes, rate.trials]].astype("int64"),
                  rate_columns(table, rate, settings.chart.confidence)]
    out = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=table.index)
    return out.loc[:, ~out.columns.duplicated()]


def weekly_rates(weekly: pd.DataFrame, settings: MonitorSettings = CAMPAIGN) -> pd.DataFrame:
    """Each week's counts turned into rates with Wilson intervals: the week, the counts, rate, low, high."""
    only_rates = MonitorSettings(week=settings.week, rates=settings.rates, windows=settings.windows,
                                 chart=settings.chart)
    table = check_weekly(weekly, only_rates, reference=False)
    return pd.concat([table[[settings.week]], rates_frame(table, settings)], axis=1).reset_index(drop=True)
