"""Ready-made settings and alert rules: the campaign table of Lab 4, and weekly workflow runs."""

from __future__ import annotations

from .alerting import AlertRule
from .settings import DRIFT_SHARE, Mix, MonitorSettings, Rate
from .signals import Trigger

SEGMENTS = ("share_weekend_hikers", "share_alpine_climbers", "share_family_campers", "share_trail_runners",
            "share_b2b_buyers")

CAMPAIGN = MonitorSettings(
    week="week_start",
    rates=(Rate("effectiveness_rate", successes="effective_recommendations", trials="recommendations_served"),),
    mixes=(Mix("customer mix", ("share_new_customers", "share_returning_customers"), weight="recommendations_served"),
           Mix("segment mix", SEGMENTS, weight="recommendations_served")),
    totals=("impressions", "clicks", "revenue_usd"),
)

# One bad week is noise, not a trend: no default rule fires on a single week. Two weeks well below
# normal, a sustained run below the centre line, or a shifted audience do.
DEFAULT_RULES: tuple[AlertRule, ...] = (
    AlertRule("Rate dropping", "effectiveness_rate", Trigger.beyond(sigmas=2, weeks=2, out_of=3),
              owner="Recommendations product owner", action="review"),
    AlertRule("Sustained decline", "effectiveness_rate", Trigger.run(weeks=8),
              owner="Recommendations product owner", action="retrain"),
    AlertRule("Audience has shifted", DRIFT_SHARE, Trigger.at_level(0.5),
              owner="CRM lead", action="review"),
)

# For a from_runs table. The pass-rate rules need the runner's check columns: without them, keep
# [r for r in RUNS_RULES if r.metric in runs_settings(weekly_runs).metrics].
RUNS_RULES: tuple[AlertRule, ...] = (
    AlertRule("Checks failing more", "pass_rate", Trigger.beyond(sigmas=2, weeks=2, out_of=3),
              owner="Workflow owner", action="rewrite the prompt"),
    AlertRule("Checks pass less, for weeks", "pass_rate", Trigger.run(weeks=8),
              owner="Workflow owner", action="rewrite the prompt"),
    AlertRule("Fewer usable replies", "usable_rate", Trigger.beyond(sigmas=2, weeks=2, out_of=3),
              owner="Workflow owner", action="review"),
    AlertRule("More refusals", "refusal_rate", Trigger.beyond(sigmas=2, weeks=2, out_of=3),
              owner="Workflow owner", action="review"),
    AlertRule("Replies getting longer", "output_words", Trigger.beyond(sigmas=2, weeks=2, out_of=3),
              owner="Workflow owner", action="rewrite the prompt"),
    AlertRule("Cost per row rising", "cost_per_row", Trigger.beyond(sigmas=2, weeks=2, out_of=3),
              owner="Budget holder", action="review"),
)
