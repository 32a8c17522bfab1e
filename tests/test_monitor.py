"""marketlab.monitor: rates, drift, control charts, alert rules, and the same monitor over workflow runs."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel

from marketlab import data, llm
from marketlab.evaluate.checks import make_check
from marketlab.llm.testing import ScriptedEndpoint
from marketlab.monitor import (
    ACTIONS, CAMPAIGN, DEFAULT_RULES, RUNS_RULES, AlertRule, DriftSettings, MonitorError, MonitorSettings, Trigger,
    Windows,
    alerts, decline_start, drift, drift_between, fires, from_runs, individuals_chart, is_refusal, p_chart,
    plot_counts_and_rate, plot_report, psi, run_monitor, runs_settings, weekly_rates, weekly_report,
    wilson_interval,
)
from marketlab.workflow import run_batch

HOLDOUT = "graders/holdout"
WEEK = pd.Timedelta(days=7)


def load(name: str) -> pd.DataFrame:
    return data.load(name, directory=HOLDOUT if name != "campaign_weekly" else None)


def weeks_late(alert_week: pd.Timestamp, start: str) -> int:
    return (alert_week - pd.Timestamp(start)) // WEEK


# --- the bar the lab's hidden test sets ------------------------------------------------------------

@pytest.mark.parametrize("name, start", [
    ("campaign_weekly_degrading", "2021-08-30"),  # graders/holdout/README.md: week index 34
    ("campaign_weekly", "2024-01-29"),  # datasets/cards/campaign_weekly.md: week 57 of 104
])
def test_a_degrading_series_alerts_within_four_weeks_and_dates_the_start(name, start):
    result = run_monitor(load(name))
    table = result.alerts_table()
    assert not table.empty
    first = table.iloc[0]
    assert 0 <= weeks_late(first["week"], start) <= 4, table[["week", "rule"]]
    assert first["metric"] == "effectiveness_rate" and first["action"] in ACTIONS and first["owner"]
    assert (table["owner"].str.len() > 0).all() and table["action"].isin(ACTIONS).all()
    # the change the alert points to began within a week of the real start
    assert abs(weeks_late(first["began"], start)) <= 1, first["began"]
    assert first["began"] <= first["week"]
    # the sustained-decline rule fires too, later, on the same change
    sustained = table[table["rule"] == "Sustained decline"].iloc[0]
    assert first["week"] < sustained["week"] <= pd.Timestamp(start) + 12 * WEEK
    assert first["owner"] in first["message"] and first["action"] in first["message"]


def test_the_stable_series_raises_no_alert_at_all():
    weekly = load("campaign_weekly_stable")
    result = run_monitor(weekly)
    assert result.alerts == [] and alerts(weekly).empty
    assert (result.report["firing"] == "").all()
    assert str(result).endswith("no alert.")
    # not because the monitor is blind: its limits are the reference's, and the same data with the
    # rate pushed down by 5 points from week 60 is caught
    broken = weekly.copy()
    later = broken.index >= 60
    broken.loc[later, "effective_recommendations"] = (broken.loc[later, "effective_recommendations"] * 0.92).round()
    found = alerts(broken)
    assert 0 <= (found.iloc[0]["week"] - weekly["week_start"].iloc[60]) // WEEK <= 2


def test_single_bad_week_is_not_an_alert_by_default_but_outside_limits_can_be_asked_for():
    weekly = load("campaign_weekly_stable").copy()
    weekly.loc[50, "effective_recommendations"] = int(weekly.loc[50, "recommendations_served"] * 0.5)
    assert alerts(weekly).empty
    strict = AlertRule("Any bad week", "effectiveness_rate", "outside_limits", owner="Analyst", action="review")
    found = alerts(weekly, [strict]).set_index("week")
    assert "below the lower control limit" in found.loc[weekly["week_start"].iloc[50], "message"]
    # ...and why it is not a default: on the untouched stable series, one noisy week crosses the limit too
    assert len(alerts(load("campaign_weekly_stable"), [strict])) == 1


# --- rates -----------------------------------------------------------------------------------------

def test_rates_are_successes_over_trials_with_wilson_intervals():
    weekly = data.load("campaign_weekly")
    rates = weekly_rates(weekly)
    assert len(rates) == len(weekly)
    assert np.allclose(rates["effectiveness_rate"], weekly["effectiveness_rate"], atol=5e-5)
    assert (rates["effectiveness_rate_low"] < rates["effectiveness_rate"]).all()
    assert (rates["effectiveness_rate"] < rates["effectiveness_rate_high"]).all()
    # textbook Wilson values (Newcombe 1998, table I)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert all(np.isnan(wilson_interval(0, 0)))


def test_the_counts_and_rate_plot_puts_growing_totals_beside_the_falling_rate():
    weekly = data.load("campaign_weekly")
    figure = plot_counts_and_rate(weekly)
    totals, rate = figure.axes[:2]
    clicks = next(line for line in totals.get_lines() if line.get_label() == "clicks").get_ydata()
    shown = next(line for line in rate.get_lines() if line.get_label() == "effectiveness_rate").get_ydata()
    assert np.mean(clicks[-52:]) > 1.3 * np.mean(clicks[:52])  # the totals grow...
    assert np.mean(shown[-26:]) < np.mean(shown[:26]) - 0.1  # ...while the rate falls


# --- drift -----------------------------------------------------------------------------------------

def test_psi_of_known_mixes_and_each_segments_contribution():
    before, after = [0.36, 0.18, 0.22, 0.14, 0.10], [0.24, 0.10, 0.27, 0.31, 0.08]
    expected = sum((a - b) * np.log(a / b) for a, b in zip(after, before))
    assert psi(before, after) == pytest.approx(expected) == pytest.approx(0.2455, abs=1e-4)
    assert psi([30, 70], [300, 700]) == pytest.approx(0.0)  # counts or shares: only the mix matters

    report = drift(load("campaign_weekly_degrading"))
    assert report.drift_detected and report.drift_share == 1.0
    segments = report.contributions["segment mix"]
    assert segments.iloc[0]["segment"] == "share_trail_runners"  # the marketplace's new runners
    assert segments["psi_contribution"].sum() == pytest.approx(report.table().set_index("feature").loc[
        "segment mix", "psi"])
    assert "share_trail_runners" in report.summary()


def test_no_drift_on_the_stable_series_although_chi_square_alone_would_say_so():
    weekly = load("campaign_weekly_stable")
    report = drift(weekly)
    assert not report.drift_detected and report.drift_share == 0.0
    assert all(f.psi < 0.01 for f in report.features)
    # hundreds of thousands of rows: the test calls a tiny wobble significant, the PSI does not
    by_test = drift(weekly, replace(CAMPAIGN, drift=DriftSettings(mix_method="chi-square")))
    assert any(f.p_value < 0.05 for f in by_test.features)


def test_drift_at_a_chosen_week_and_a_numeric_feature_by_ks():
    weekly = load("campaign_weekly_degrading")
    assert not drift(weekly, current_end="2021-08-23").drift_detected
    assert drift(weekly, current_end="2021-10-25").drift_detected
    with pytest.raises(MonitorError, match="not a week after the reference"):
        drift(weekly, current_end="2021-02-01")

    rng = np.random.default_rng(3)
    rows = pd.DataFrame({"week": np.repeat([0, 1], 300), "price": np.r_[rng.normal(50, 10, 300),
                                                                       rng.normal(65, 10, 300)]})
    settings = MonitorSettings(week="week", numeric=("price",))
    moved = drift_between(rows[rows.week == 0], rows[rows.week == 1], settings)
    assert moved.drift_detected and moved.features[0].method == "ks" and moved.features[0].p_value < 1e-6
    same = drift_between(rows[rows.week == 0].iloc[:150], rows[rows.week == 0].iloc[150:], settings)
    assert not same.drift_detected


# --- control limits and run rules ------------------------------------------------------------------

def test_p_chart_limits_are_binomial_without_extra_noise_and_wider_with_it():
    rng = np.random.default_rng(0)
    n = np.full(40, 2000)
    k = rng.binomial(n, 0.3)
    chart = p_chart("rate", k, n, 20)
    centre = k[:20].sum() / n[:20].sum()
    binomial = np.sqrt(centre * (1 - centre) / 2000)
    assert chart.centre == pytest.approx(centre)
    assert chart.sigma[0] == pytest.approx(binomial, rel=0.35)
    assert chart.sigma[0] >= binomial  # never narrower than the plain p-chart
    noisy = rng.binomial(n, np.clip(0.3 + rng.normal(0, 0.03, 40), 0, 1))
    laney = p_chart("rate", noisy, n, 20)
    plain = p_chart("rate", noisy, n, 20, overdispersion=False)
    assert laney.sigma[0] > 3 * plain.sigma[0]
    assert plain.lower[0] == pytest.approx(plain.centre - 3 * plain.sigma[0])


def test_individuals_chart_and_a_reference_with_no_variation():
    chart = individuals_chart("words", np.array([10, 12, 11, 13, 12, 20.0]), 5)
    assert chart.centre == pytest.approx(11.6)
    assert chart.sigma[0] == pytest.approx(np.mean([2, 1, 2, 1]) / 1.128)
    flat = individuals_chart("cost", np.array([0, 0, 0, 0, 0, 0.01]), 5)
    assert list(flat.z) == [0, 0, 0, 0, 0, np.inf]
    zero = p_chart("refusals", np.array([0, 0, 0, 0, 0, 1]), np.full(6, 20), 5)
    assert zero.centre == 0 and zero.sigma[0] > 0 and 2 < zero.z[-1] < np.inf  # a first refusal: finite, high


def test_run_rules_fire_only_after_the_reference_and_on_the_bad_side():
    z = np.array([-3.5, -2.5, -2.5, 0, 0, -2.5, 0.1, -2.2, 0, -1, -1, -1, -1, -1, -1, -1, -1, 4])
    values = z.copy()
    start = 4
    assert np.flatnonzero(fires(Trigger.outside_limits(), values, z, "lower", start)).tolist() == []
    assert np.flatnonzero(fires(Trigger.beyond(2, 2, 3), values, z, "lower", start)).tolist() == [7]
    assert np.flatnonzero(fires(Trigger.run(8), values, z, "lower", start)).tolist() == [16]
    assert np.flatnonzero(fires(Trigger.outside_limits(), values, z, "higher", start)).tolist() == [17]
    falling = np.array([5, 5, 5, 5, 4, 3, 2, 1, 0, 1.0])
    assert np.flatnonzero(fires(Trigger.trend(4), falling, None, "lower", 3)).tolist() == [7, 8]
    assert np.flatnonzero(fires(Trigger.at_level(2), falling, None, "lower", 3)).tolist() == [6, 7, 8, 9]


def test_decline_start_is_where_the_cusum_last_left_zero():
    z = np.r_[np.zeros(10), [0.3, -0.2, 0.4], [-2.5, -1.0, -3.0, -4.0]]
    assert decline_start(z, 16, "lower", 5) == 13
    assert decline_start(-z, 16, "higher", 5) == 13


# --- alert rules -----------------------------------------------------------------------------------

@pytest.mark.parametrize("owner, action, says", [
    ("", "review", "has no owner"), ("   ", "retrain", "has no owner"), ("CRM lead", "", "has no action"),
    ("CRM lead", "panic", "has the action 'panic'"),
])
def test_a_rule_without_an_owner_or_a_known_action_is_refused(owner, action, says):
    with pytest.raises(MonitorError) as caught:
        AlertRule("Rate dropping", "effectiveness_rate", "two_of_three", owner=owner, action=action)
    assert says in caught.value.problem and caught.value.fix
    with pytest.raises(MonitorError, match="no owner"):
        AlertRule("Rate dropping", "effectiveness_rate", "run")  # owner and action left out altogether


def test_rules_are_checked_against_what_the_monitor_measures():
    weekly = data.load("campaign_weekly")
    rule = AlertRule("Clicks", "click_rate", "run", owner="Analyst", action="Rewrite  the prompt")
    assert rule.action == "rewrite the prompt"
    with pytest.raises(MonitorError, match="'click_rate', which the monitor does not measure"):
        weekly_report(weekly, [rule])
    level_only = AlertRule("Mix", "segment_mix_psi", "run", owner="Analyst", action="review")
    with pytest.raises(MonitorError, match="no control limits"):
        weekly_report(weekly, [level_only])
    with pytest.raises(MonitorError, match="is not one the monitor knows"):
        AlertRule("X", "effectiveness_rate", "sometimes", owner="A", action="review")
    twice = [DEFAULT_RULES[0], DEFAULT_RULES[0]]
    with pytest.raises(MonitorError, match="Two alert rules are called"):
        weekly_report(weekly, twice)


def test_the_weekly_report_and_its_plot():
    result = run_monitor(load("campaign_weekly_degrading"))
    report = result.report
    assert len(report) == 104 and (report["window"].iloc[:26] == "reference").all()
    assert report["effectiveness_rate_centre"].nunique() == 1
    assert report.loc[:25, "drift_share"].isna().all() and report.loc[60:, "drift_detected"].all()
    raised = report.loc[report["raised"] != "", "week_start"]
    assert list(raised.unique()) == sorted({a.week for a in result.alerts})
    figure = result.plot()
    assert len(figure.axes) == 2  # the control chart and the PSI of each mix
    assert plot_report(report).axes[0].get_title().startswith("effectiveness_rate")


# --- bad input -------------------------------------------------------------------------------------

def _broken(change) -> pd.DataFrame:
    weekly = data.load("campaign_weekly").copy()
    return change(weekly) if change(weekly) is not None else weekly


@pytest.mark.parametrize("change, says", [
    (lambda d: d.drop(columns=["recommendations_served"]), "no column 'recommendations_served'"),
    (lambda d: d.loc.__setitem__((5, "effective_recommendations"), -3), "negative count (-3)"),
    (lambda d: d.loc.__setitem__((7, "effective_recommendations"), d.loc[7, "recommendations_served"] + 1),
     "is more than 'recommendations_served'"),
    (lambda d: d.loc.__setitem__((9, "week_start"), d.loc[8, "week_start"]), "appears 2 times (index [8, 9])"),
    (lambda d: d.loc.__setitem__((9, "week_start"), pd.Timestamp("2022-06-06")), "weeks are not in order"),
    (lambda d: d.loc.__setitem__((3, "clicks"), np.nan), "Column 'clicks' should hold numbers"),
])
def test_bad_weekly_tables_get_a_clear_message(change, says):
    with pytest.raises(MonitorError) as caught:
        weekly_report(_broken(change))
    assert says in caught.value.problem, caught.value.problem
    assert caught.value.fix


def test_empty_short_and_wrong_kind_of_tables():
    with pytest.raises(MonitorError, match="empty"):
        weekly_report(data.load("campaign_weekly").iloc[:0])
    with pytest.raises(MonitorError, match="has 20 weeks, but the reference window alone takes 26"):
        weekly_report(data.load("campaign_weekly").head(20))
    assert len(weekly_report(data.load("campaign_weekly").head(20), settings=CAMPAIGN.with_windows(10))) == 20
    with pytest.raises(MonitorError, match="not list"):
        weekly_report([1, 2, 3])
    with pytest.raises(MonitorError, match="at least 4 reference weeks"):
        Windows(reference_weeks=2)
    where = _broken(lambda d: d.loc.__setitem__((4, "effective_recommendations"), -1))
    with pytest.raises(MonitorError, match=r"the week of 2023-01-30 \(index 4\)"):
        weekly_rates(where)


# --- the same monitor over a workflow's weekly runs ------------------------------------------------

class Headline(BaseModel):
    headline: str


def _messages(record):
    return [{"role": "user", "content": f"Week {record['week']}. Write a headline for {record['name']}."}]


def _reply(body: dict):
    """Good short headlines until week 8; then longer ones, and the content filter on some rows."""
    text = body["messages"][-1]["content"]
    week, product = int(re.match(r"Week (\d+)", text).group(1)), text.rsplit("for ", 1)[1]
    words = 3 + len(product) % 4
    if week >= 8:
        if len(product) % 3 == 0:
            return {"content": "", "finish_reason": "content_filter"}
        words += 12
    return json.dumps({"headline": " ".join(["Trail"] * words)})


def _at_most_eight_words(text, product, channel):
    words = len(text.split())
    return None if words <= 8 else f"{words} words, 8 allowed"


def test_workflow_runs_week_by_week_alert_on_checks_refusals_length_and_cost(fresh_home):
    products = data.load("products").head(10)
    rows = pd.concat([products.assign(week=w) for w in range(12)], ignore_index=True)
    endpoint = ScriptedEndpoint(responder=_reply)
    results = run_batch(rows, _messages, Headline, endpoint.client(), "scripted-model", include=["sku", "week"],
                        workers=2, cache=False, checkpoint=False, progress=False, show_summary=False,
                        prices=(1.0, 4.0), repair=False, checks=[make_check("length", _at_most_eight_words)])
    assert {"check_length", "checks"} <= set(results.columns)  # the runner's check columns
    weekly = from_runs(results, week="week")
    assert list(weekly["week"]) == list(range(12)) and (weekly["rows"] == 10).all()
    assert (weekly.loc[:7, "refusals"] == 0).all() and (weekly.loc[8:, "refusals"] > 0).all()
    assert (weekly["checked"] == weekly["usable"]).all()
    assert (weekly.loc[:7, "passed"] == 10).all() and (weekly.loc[8:, "passed"] == 0).all()
    assert (weekly.loc[8:, "output_words"] > weekly.loc[:7, "output_words"].max()).all()
    assert (weekly.loc[8:, "cost_per_row"] > weekly.loc[:7, "cost_per_row"].max()).all()

    settings = runs_settings(weekly)
    assert settings.windows.reference_weeks == 6
    assert {"pass_rate", "length_pass_rate", "refusal_rate", "usable_rate", "output_words",
            "cost_per_row"} <= set(settings.metrics)
    result = run_monitor(weekly, RUNS_RULES, settings)
    first = result.alerts_table().groupby("metric")["week"].min()
    assert first.to_dict() == {"pass_rate": 9, "refusal_rate": 9, "usable_rate": 9, "output_words": 9,
                               "cost_per_row": 9}
    assert result.report.loc[:7, "firing"].eq("").all()


def test_refusals_defined_simply():
    assert is_refusal("I'm sorry, but I can't help with that.") and is_refusal("  As an AI model, I")
    assert is_refusal("I\u2019m sorry") and not is_refusal("Sorry-proof boots for every trail")
    assert not is_refusal(None) and not is_refusal("The trail is calling.")


def test_from_runs_bad_input():
    results = pd.DataFrame({"status": ["ok"], "error_kind": [""], "cost_usd": [0.0], "headline": ["Hi"]})
    with pytest.raises(MonitorError, match="no column 'week'") as caught:
        from_runs(results)
    assert "results['week']" in caught.value.fix
    with pytest.raises(MonitorError, match="no column 'status'"):
        from_runs(pd.DataFrame({"week": [1], "headline": ["x"]}))
    with pytest.raises(MonitorError, match="'checks' has 'maybe'"):
        from_runs(results.assign(week=1, checks="maybe"))
    with pytest.raises(MonitorError, match="is blank"):
        from_runs(results.assign(week=[None]))


def _headline_messages(record):
    return [{"role": "user", "content": f"Write a short headline for {record['name']}."}]


@pytest.mark.slow
def test_from_runs_on_real_local_model_results(local_base_url, fresh_home):
    # Only what holds whatever the small model writes: one row per week, counts that add up, cost 0.
    products = data.load("products").head(2)
    runs = []
    for day in ("2024-03-04", "2024-03-13"):  # the workflow run once a week; the second run hits the cache
        run = run_batch(products, _headline_messages, Headline, llm.client(), llm.model_name(), include=["sku"],
                        max_tokens=30, workers=1, progress=False, show_summary=False, request_timeout=120)
        runs.append(run.assign(week=day))
    results = pd.concat(runs, ignore_index=True)
    weekly = from_runs(results)
    assert list(weekly["week"]) == [pd.Timestamp("2024-03-04"), pd.Timestamp("2024-03-11")]  # Wednesday -> Monday
    assert (weekly["rows"] == 2).all() and (weekly["usable"] <= weekly["rows"]).all()
    assert list(results["source"].iloc[2:]) == ["cache", "cache"]
    assert (weekly["cost_per_row"] == 0).all()
    assert ((weekly["usable"] == 0) | (weekly["output_words"] > 0)).all()
