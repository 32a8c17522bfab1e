"""Weekly performance of a recommendation engine: traffic grows while the effectiveness rate can decay."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .common import fmt

SEGMENTS = ("weekend_hikers", "alpine_climbers", "family_campers", "trail_runners", "b2b_buyers")
# Segment mix before and after the shift (new marketplace audience: runners and families).
MIX_BEFORE = np.array([0.36, 0.18, 0.22, 0.14, 0.10])
MIX_AFTER = np.array([0.24, 0.10, 0.27, 0.31, 0.08])
# Effectiveness of recommendations for new and returning customers, before and after drift.
RATE_NEW = (0.37, 0.28)
RATE_RETURNING = (0.70, 0.62)
SHARE_NEW = (0.30, 0.65)


def generate(seed: int, start: str, weeks: int = 104, shift_week: int | None = 56, ramp: int = 8,
             base_impressions: float = 185_000, growth: float = 1.0) -> pd.DataFrame:
    """Return weekly rows; the customer mix shifts at ``shift_week`` (0-based index), or never if None."""
    rng = np.random.default_rng(seed)
    t0 = np.datetime64(start)
    rows = []
    for w in range(weeks):
        week = t0 + np.timedelta64(7 * w, "D")
        doy = (week - week.astype("datetime64[Y]")).astype(int)
        # Outdoor seasonality: spring/summer peak, plus Black Friday to Christmas.
        season = 1 + 0.22 * np.sin(2 * np.pi * (doy - 80) / 365.25)
        if 326 <= doy <= 358:
            season += 0.35
        trend = 1 + growth * w / weeks
        impressions = base_impressions * trend * season * float(np.exp(rng.normal(0, 0.05)))
        if shift_week is None:
            progress = 0.0
        else:
            progress = float(np.clip((w - shift_week + 1) / ramp, 0, 1))
        share_new = SHARE_NEW[0] + (SHARE_NEW[1] - SHARE_NEW[0]) * progress + rng.normal(0, 0.015)
        share_new = float(np.clip(share_new, 0.05, 0.95))
        mix = MIX_BEFORE + (MIX_AFTER - MIX_BEFORE) * progress + rng.normal(0, 0.008, len(SEGMENTS))
        mix = np.clip(mix, 0.01, None)
        mix = mix / mix.sum()
        r_new = RATE_NEW[0] + (RATE_NEW[1] - RATE_NEW[0]) * progress
        r_ret = RATE_RETURNING[0] + (RATE_RETURNING[1] - RATE_RETURNING[0]) * progress
        rate = share_new * r_new + (1 - share_new) * r_ret + rng.normal(0, 0.012)
        recs = int(round(impressions * rng.uniform(0.33, 0.37)))
        effective = int(round(recs * rate))
        ctr = 0.031 * (1 + rng.normal(0, 0.04)) * (1 + 0.1 * progress)  # new audiences click more, buy less
        clicks = int(round(impressions * ctr))
        conv_rate = (0.052 - 0.012 * progress) * (1 + rng.normal(0, 0.05))
        conversions = int(round(clicks * conv_rate))
        aov = 96 * (1.12 if 326 <= doy <= 358 else 1.0) * (1 + rng.normal(0, 0.03))
        revenue = conversions * aov
        shares = np.round(mix, 3)
        shares[-1] = round(1 - shares[:-1].sum(), 3)
        rows.append({
            "week_start": str(week), "impressions": int(round(impressions)), "recommendations_served": recs,
            "effective_recommendations": effective, "effectiveness_rate": fmt(effective / recs, 4),
            "clicks": clicks, "conversions": conversions, "revenue_usd": fmt(revenue),
            "share_new_customers": fmt(share_new, 3), "share_returning_customers": fmt(1 - round(share_new, 3), 3),
            **{f"share_{s}": fmt(v, 3) for s, v in zip(SEGMENTS, shares)},
        })
    return pd.DataFrame(rows)
