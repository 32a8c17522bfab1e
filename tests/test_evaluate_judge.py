"""The rubric judge, calibration against people, the A/B comparison and the plots of marketlab.evaluate.

Figures are checked against independent computations (scikit-learn and scipy called directly,
counts by hand, small cases worked out on paper). The judge runs through the scripted endpoint where
the point is a fault or a controlled reply, and once through the real local model server, where only
the structure and the recording are asserted, never the quality of the verdicts.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, bootstrap, fisher_exact
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from marketlab import data, llm
from marketlab.data import DEFECTS
from marketlab.errors import MarketlabError
from marketlab.evaluate.calibrate import calibrate
from marketlab.evaluate.compare import Acceptance, compare
from marketlab.evaluate.rubric import TONE_RUBRIC, Rubric, judge, pairwise, tone_rubric
from marketlab.evaluate.plots import plot
from marketlab.llm.testing import Fault, ScriptedEndpoint
from marketlab.workflow import STATUSES, RetryPolicy

FAST = RetryPolicy(base_delay=0.01, max_delay=0.05)
QUIET = dict(progress=False, show_summary=False, retry=FAST, workers=1)


@pytest.fixture(autouse=True)
def _home(fresh_home: Path) -> Path:
    return fresh_home


@pytest.fixture(scope="module")
def rated() -> pd.DataFrame:
    return data.load("rated_outputs")


def verdict_json(score: int, passed: bool | None = None, reason: str = "Plain and calm.") -> str:
    passed = score >= 4 if passed is None else passed
    return json.dumps({"findings": "none", "score": score, "passed": passed, "reason": reason})


def user_text(body: dict) -> str:
    return body["messages"][-1]["content"]


def every_message(body: dict) -> str:
    return "\n".join(str(m["content"]) for m in body["messages"])


def as_results(rows: pd.DataFrame) -> pd.DataFrame:
    """A run_checks-shaped table from human defect labels: a check passes where its defect is absent."""
    out = rows[["output_id"]].reset_index(drop=True)
    for defect in DEFECTS:
        out[defect] = ~rows[defect].to_numpy()
    out["passed"] = out[list(DEFECTS)].all(axis=1)
    out["reason"] = ["" if ok else "labelled defect" for ok in out["passed"]]
    return out


def results(passes: dict[str, list[bool]]) -> pd.DataFrame:
    """A small run_checks-shaped table: one bool column per check, then passed and reason."""
    table = pd.DataFrame({name: np.array(values, dtype=bool) for name, values in passes.items()})
    table.insert(0, "sku", [f"RO-{1000 + i}" for i in range(len(table))])
    table["passed"] = table[list(passes)].all(axis=1)
    table["reason"] = ""
    return table


# -- calibration ---------------------------------------------------------------------------

def test_calibration_on_the_rated_outputs_matches_sklearn_and_hand_counts(rated):
    human = ~rated["wrong_tone"]  # True = on tone (passes)
    flip = np.random.default_rng(11).random(len(rated)) < 0.15
    predicted = pd.Series(np.where(flip, ~human, human), index=rated.index)
    result = calibrate(predicted, human, texts=rated["text"])

    assert result.n == 200 and result.excluded == 0
    assert result.agreement == pytest.approx((predicted == human).mean())
    assert result.kappa == pytest.approx(cohen_kappa_score(human, predicted))
    expected = confusion_matrix(human, predicted, labels=[True, False])
    assert result.confusion.to_numpy().tolist() == expected.tolist()
    assert list(result.confusion.index) == [True, False] and result.confusion.index.name == "human"
    # always pass = "no defect" for every row: right on the 158 texts without a tone defect (data card: 42 have one)
    always = result.baselines["always_pass"]
    assert always.predicts is True and always.agreement == pytest.approx(158 / 200) and always.kappa == 0
    assert result.baselines["majority"].predicts is True  # most texts are on tone
    assert len(result.disagreements) == int(flip.sum())
    assert (result.disagreements["text"] == rated.loc[result.disagreements.index, "text"]).all()
    table = result.table()
    assert table["predictor"].tolist() == ["judge", "always_pass", "majority"]
    assert table.loc[0, "kappa"] == pytest.approx(result.kappa)


def test_a_small_case_worked_out_by_hand():
    # agreement 3/4; chance agreement 0.5 x 0.25 + 0.5 x 0.75 = 0.5; kappa (0.75 - 0.5) / 0.5 = 0.5
    result = calibrate([True, False, False, False], [True, True, False, False])
    assert result.agreement == 0.75 and result.kappa == pytest.approx(0.5)
    assert result.confusion.loc[True, False] == 1 and result.confusion.loc[False, False] == 2
    assert result.disagreements.index.tolist() == [1]


def test_trust_needs_both_a_high_kappa_and_beating_the_baselines(rated):
    human = ~rated["wrong_tone"]
    good = calibrate(human.where(rated.index % 20 != 0, ~human), human)  # wrong on 1 row in 20
    assert good.trust and good.kappa >= 0.6 and "more than the best baseline" in good.why
    lazy = calibrate(pd.Series(True, index=rated.index), human)
    assert not lazy.trust and "no more than simply always saying True" in lazy.why


def test_kappa_when_one_or_both_sides_never_change_is_zero_with_a_note_not_a_crash():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one_side = calibrate([True] * 6, [True, True, False, True, False, True])
        both_sides = calibrate([True] * 5, [True] * 5)
    assert one_side.kappa == 0 and any("same label" in n for n in one_side.notes)
    assert both_sides.kappa == 0 and both_sides.agreement == 1 and any("same label" in n for n in both_sides.notes)
    assert not both_sides.trust


def test_rows_the_judge_could_not_answer_are_counted_and_left_out(rated):
    human = ~rated["wrong_tone"]
    predicted = human.astype("boolean")
    predicted.iloc[[0, 5, 9]] = pd.NA
    result = calibrate(predicted, human)
    assert result.n == 197 and result.excluded == 3 and result.agreement == 1.0
    assert any("3 row(s) have no judge label" in n for n in result.notes)
    kept = predicted.notna()
    assert result.baselines["always_pass"].agreement == pytest.approx(human[kept].mean())


def test_category_labels_and_the_majority_baseline():
    human = ["on tone", "on tone", "hype", "slang", "hype", "hype"]
    judged = ["on tone", "hype", "hype", "on tone", "hype", "slang"]
    result = calibrate(judged, human, positive="on tone")
    assert result.agreement == pytest.approx(3 / 6)
    assert result.kappa == pytest.approx(cohen_kappa_score(human, judged))
    assert result.baselines["majority"].predicts == "hype" and result.baselines["majority"].agreement == 0.5
    assert result.baselines["always_pass"].agreement == pytest.approx(2 / 6)
    assert list(result.confusion.columns) == ["on tone", "hype", "slang"]


@pytest.mark.parametrize("args, kwargs, words", [
    (([True, False], [True]), {}, "2 labels and human has 1"),
    ((["yes", "no"], [True, False]), {}, "can never agree"),
    (([True, False], [True, False]), {"positive": "pass"}, "positive='pass' is not one of the labels"),
    (([pd.NA, pd.NA], [True, False]), {}, "No row has both"),
    ((pd.DataFrame({"x": [True]}), [True]), {}, "whole table"),
])
def test_calibration_input_mistakes_say_what_and_how_to_fix(args, kwargs, words):
    with pytest.raises(MarketlabError) as caught:
        calibrate(*args, **kwargs)
    assert words in caught.value.problem and caught.value.fix


# -- A/B comparison --------------------------------------------------------------------------

def test_compare_on_the_rated_outputs_matches_independent_figures(rated):
    a = as_results(rated[rated["prompt_version"] == "v1"])
    b = as_results(rated[rated["prompt_version"] == "v2"])
    result = compare(a, b, seed=5)

    labels = rated.groupby("prompt_version")[list(DEFECTS)].mean()
    for defect in DEFECTS:
        row = result.by_check.set_index("check").loc[defect]
        assert row["a"] == pytest.approx(1 - labels.loc["v1", defect])
        assert row["b"] == pytest.approx(1 - labels.loc["v2", defect])
        assert row["change"] == pytest.approx(row["b"] - row["a"])
    clean = (~rated[list(DEFECTS)].any(axis=1)).groupby(rated["prompt_version"]).mean()
    assert result.pass_rate_a == pytest.approx(clean["v1"]) and result.pass_rate_b == pytest.approx(clean["v2"])
    # the paired statistics, computed again here with scipy directly
    pa, pb = a["passed"].to_numpy(float), b["passed"].to_numpy(float)
    assert result.a_only == int(((pa == 1) & (pb == 0)).sum()) and result.b_only == int(((pa == 0) & (pb == 1)).sum())
    assert result.p_value == pytest.approx(binomtest(result.b_only, result.a_only + result.b_only, 0.5).pvalue)
    direct = bootstrap((pa, pb), lambda x, y, axis=-1: y.mean(axis=axis) - x.mean(axis=axis), paired=True,
                       vectorized=True, n_resamples=9999, confidence_level=0.95, rng=np.random.default_rng(5))
    assert result.interval == pytest.approx((direct.confidence_interval.low, direct.confidence_interval.high))
    assert result.interval[0] < result.difference < result.interval[1]
    assert result.paired and compare(a, b, seed=5).interval == result.interval  # seeded: the same every run
    assert result.table()["check"].tolist()[-1] == "all checks"


def test_versions_on_different_inputs_are_compared_as_two_samples(rated):
    # In the dataset v1 and v2 were written for different products: no pairs, so two independent samples.
    v1, v2 = rated[rated["prompt_version"] == "v1"], rated[rated["prompt_version"] == "v2"]
    a, b = as_results(v1).assign(sku=v1["sku"].to_numpy()), as_results(v2).assign(sku=v2["sku"].to_numpy())
    result = compare(a, b, seed=2)
    assert not result.paired and any("two independent samples" in n for n in result.notes)
    pa, pb = a["passed"].to_numpy(float), b["passed"].to_numpy(float)
    table = [[int(pa.sum()), int(len(pa) - pa.sum())], [int(pb.sum()), int(len(pb) - pb.sum())]]
    assert result.p_value == pytest.approx(fisher_exact(table).pvalue)
    direct = bootstrap((pa, pb), lambda x, y, axis=-1: y.mean(axis=axis) - x.mean(axis=axis), paired=False,
                       vectorized=True, n_resamples=9999, confidence_level=0.95, rng=np.random.default_rng(2))
    assert result.interval == pytest.approx((direct.confidence_interval.low, direct.confidence_interval.high))
    shorter = compare(a, b.head(60))
    assert not shorter.paired and shorter.n_b == 60
    with pytest.raises(MarketlabError, match="pairwise judge needs a and b on the same inputs"):
        compare(a, b, pairwise=pd.DataFrame({"winner": ["a"] * 100}))


def test_verdict_ship_when_b_meets_acceptance_and_is_not_worse():
    a = results({"length": [True] * 6 + [False] * 4, "faithfulness": [True] * 10})
    b = results({"length": [True] * 9 + [False], "faithfulness": [True] * 10})
    result = compare(a, b, Acceptance(min_pass_rate=0.8, must_pass=["faithfulness"]))
    assert result.verdict == "ship", result.why
    assert "meets every acceptance criterion" in result.why and "90%" in result.why


def test_verdict_iterate_when_b_is_better_but_misses_acceptance():
    a = results({"length": [True] * 5 + [False] * 5})
    b = results({"length": [True] * 7 + [False] * 3})
    result = compare(a, b, Acceptance(min_pass_rate=0.9))
    assert result.verdict == "iterate", result.why
    assert "better than A" in result.why and "70% where 90% is required" in result.why


def test_verdict_iterate_when_b_meets_a_criterion_a_missed_at_the_same_pass_rate():
    a = results({"length": [True] * 8 + [False] * 2, "faithfulness": [True] * 9 + [False]})
    b = results({"length": [True] * 8 + [False] * 2, "faithfulness": [True] * 10})
    assert a["passed"].mean() == b["passed"].mean() == 0.8
    result = compare(a, b, Acceptance(min_pass_rate=0.9, must_pass=["faithfulness"]))
    assert result.verdict == "iterate", result.why
    assert "now meets 'faithfulness' pass rate" in result.why


def test_verdict_stop_when_b_is_not_better_and_misses_acceptance():
    a = results({"length": [True] * 6 + [False] * 4})
    b = results({"length": [True] * 6 + [False] * 4})
    result = compare(a, b, Acceptance(min_pass_rate=0.9))
    assert result.verdict == "stop" and "not better than A" in result.why
    assert any("nothing to weigh" in n for n in result.notes)  # no discordant pair: p = 1, said so
    assert result.p_value == 1.0


def test_verdict_stop_when_b_is_significantly_worse_even_if_it_meets_the_pass_rate():
    a = results({"length": [True] * 100})
    b = results({"length": [True] * 80 + [False] * 20})
    result = compare(a, b, Acceptance(min_pass_rate=0.5, min_improvement=-0.5))
    assert result.interval[1] < 0
    assert result.verdict == "stop" and "worse than A beyond chance" in result.why


def test_no_acceptance_means_b_only_has_to_be_as_good_as_a():
    a = results({"length": [True] * 5 + [False] * 5})
    assert compare(a, results({"length": [True] * 6 + [False] * 4})).verdict == "ship"
    assert compare(a, results({"length": [True] * 4 + [False] * 6})).verdict == "stop"


def test_pairwise_win_rate_and_order_bias_are_reported():
    a = results({"length": [True] * 4})
    table = pd.DataFrame({"winner": ["b", "b", "a", "tie"], "shown_first": ["b", "b", "a", "a"]})
    result = compare(a, a.copy(), pairwise=table.astype("string"))
    assert result.pairwise.b_wins == 2 and result.pairwise.ties == 1 and result.pairwise.b_win_rate == 0.5
    assert result.pairwise.first_shown_won == 1.0 and any("order bias" in n for n in result.notes)


@pytest.mark.parametrize("change, words", [
    (lambda a, b: (a, b.assign(sku=b["sku"][::-1].to_numpy())), "row 1 has sku"),
    (lambda a, b: (a, b.drop(columns="faithfulness")), "only a has ['faithfulness']"),
    (lambda a, b: (a, b.drop(columns="passed")), "no 'passed' column"),
    (lambda a, b: (a, b[["sku", "passed", "reason"]]), "no check columns"),
])
def test_compare_bad_input_says_what_and_how_to_fix(change, words):
    a = results({"length": [True, False, True, True], "faithfulness": [True, True, False, True]})
    left, right = change(a, a.copy())
    with pytest.raises(MarketlabError) as caught:
        compare(left, right)
    assert words in caught.value.problem and caught.value.fix


def test_acceptance_mistakes_are_clear():
    with pytest.raises(MarketlabError, match="min_pass_rate"):
        Acceptance(min_pass_rate=80)
    a = results({"length": [True, False]})
    with pytest.raises(MarketlabError, match="does not have|do not have"):
        compare(a, a.copy(), Acceptance(must_pass=["faithfullness"]))
    assert Acceptance(must_pass={"length": 0.5}).required_rates() == {"length": 0.5}


# -- plots -------------------------------------------------------------------------------

def test_plot_draws_pass_rates_side_by_side_and_the_confusion_table(rated):
    a = as_results(rated[rated["prompt_version"] == "v1"])
    b = as_results(rated[rated["prompt_version"] == "v2"])
    comparison = compare(a, b)
    calibration = calibrate([True, False, False, False], [True, True, False, False])
    figure = plot(comparison, calibration)
    bars_axis, confusion_axis = figure.axes[:2]
    assert len(bars_axis.patches) == 2 * (len(DEFECTS) + 1)  # A and B for every check, plus "all checks"
    widths = sorted(round(p.get_width(), 6) for p in bars_axis.patches)
    assert widths == sorted(round(v * 100, 6) for v in [*comparison.table()["a"], *comparison.table()["b"]])
    assert sorted(t.get_text() for t in confusion_axis.texts) == ["0", "1", "1", "2"]
    png = io.BytesIO()
    figure.savefig(png, format="png")
    assert png.getvalue()[:4] == b"\x89PNG"
    single = plot(a)
    assert len(single.axes) == 1 and len(single.axes[0].patches) == len(DEFECTS) + 1
    with pytest.raises(MarketlabError, match="nothing to draw"):
        plot()


# -- the judge, through the scripted endpoint --------------------------------------------------

def test_rubric_records_a_prompt_id_that_follows_the_wording():
    template = json.dumps(TONE_RUBRIC.prompt("{text}"), sort_keys=True, ensure_ascii=False)
    assert TONE_RUBRIC.prompt_id == hashlib.sha256(template.encode()).hexdigest()[:12]
    reworded = TONE_RUBRIC.model_copy(update={"steps": [*TONE_RUBRIC.steps[:-1], "Score it from 1 to 5."]})
    assert reworded.prompt_id != TONE_RUBRIC.prompt_id
    voice = data.load_brand_voice()
    assert all(word in TONE_RUBRIC.prompt("x")[1]["content"] for word in voice["tone"]["jargon_to_avoid"][:3])
    assert tone_rubric(voice).version == f"1-voice{voice['version']}"
    with pytest.raises(MarketlabError, match="pass_mark"):
        Rubric(name="tone", version="1", criteria=["calm"], steps=["read it"], pass_mark=9)


def test_judge_retries_faults_and_records_model_prompt_and_rubric_on_every_row():
    texts = pd.DataFrame({"text": ["Warm, plain words.", "BUY NOW!!!", "Solid pack."]}, index=[10, 20, 30])
    endpoint = ScriptedEndpoint([Fault.rate_limit(retry_after=0.01), Fault.server_error(), verdict_json(5),
                                 Fault.malformed_json(), verdict_json(1, reason="Shouting."), verdict_json(4)])
    out = judge(texts, TONE_RUBRIC, endpoint.client(), "scripted", cache=False, checkpoint=False, **QUIET)
    assert out.index.tolist() == [10, 20, 30]
    assert out["judge_status"].tolist() == ["ok", "repaired", "ok"]
    assert out["judge_calls"].tolist() == [3, 2, 1] and endpoint.calls == 6
    assert out["judge_score"].tolist() == [5, 1, 4] and out["judge_pass"].tolist() == [True, False, True]
    assert out["judge_reason"].tolist()[1] == "Shouting."
    assert (out["judge_model"] == "scripted").all() and (out["judge_prompt"] == TONE_RUBRIC.prompt_id).all()
    assert (out["rubric_version"] == TONE_RUBRIC.version).all() and (out["rubric_name"] == TONE_RUBRIC.name).all()
    first = endpoint.requests[0]
    assert "BUY NOW" not in user_text(first) and "Warm, plain words." in user_text(first)
    assert first["response_format"]["type"] == "json_schema" and first["temperature"] == 0


def test_a_row_the_judge_never_answers_is_na_with_a_status_never_a_pass():
    def responder(body):
        if "NEVER ANSWERED" in every_message(body):
            return Fault.server_error()
        # a repair request carries the first messages too, so the out-of-range score comes back every time
        return verdict_json(9) if "OUT OF RANGE" in every_message(body) else verdict_json(5)

    texts = pd.DataFrame({"text": ["Fine copy.", "NEVER ANSWERED copy.", "OUT OF RANGE copy.", "  "]})
    endpoint = ScriptedEndpoint(responder=responder)
    out = judge(texts, TONE_RUBRIC, endpoint.client(), "scripted", cache=False, checkpoint=False, **QUIET)
    assert out["judge_status"].tolist() == ["ok", "failed", "failed", "no_text"]
    assert out["judge_pass"].isna().tolist() == [False, True, True, True]
    assert out["judge_score"].isna().tolist() == [False, True, True, True]
    assert out["judge_calls"].tolist()[:2] == [1, FAST.max_attempts]  # every try, then it gave up
    assert "HTTP 500" in out.loc[1, "judge_error"] and "schema" not in out.loc[1, "judge_error"]
    assert "score" in out.loc[2, "judge_error"]  # says which field was wrong
    assert out.loc[3, "judge_error"] and out["judge_error"][0] == ""
    assert (out["judge_prompt"] == TONE_RUBRIC.prompt_id).all()  # recorded on unanswered rows too
    assert endpoint.calls == 1 + FAST.max_attempts + 2  # the out-of-range score got one repair; the blank was not sent
    assert calibrate(out["judge_pass"], [True, True, True, True]).excluded == 3


def test_a_second_judge_run_is_served_from_the_cache(fresh_home):
    texts = pd.DataFrame({"text": [f"Copy number {i}." for i in range(5)]})
    endpoint = ScriptedEndpoint(responder=lambda body: verdict_json(4))
    first = judge(texts, TONE_RUBRIC, endpoint.client(), "scripted", cache=str(fresh_home / "cache"), **QUIET)
    made = endpoint.calls
    again = judge(texts, TONE_RUBRIC, endpoint.client(), "scripted", cache=str(fresh_home / "cache"), **QUIET)
    assert made == 5 and endpoint.calls == made  # not one more model call
    assert (again["judge_calls"] == 0).all()
    pd.testing.assert_frame_equal(first.drop(columns="judge_calls"), again.drop(columns="judge_calls"))


def test_the_judge_stops_at_the_budget_and_the_rows_left_are_na():
    texts = pd.DataFrame({"text": [f"Copy number {i}." for i in range(6)]})
    endpoint = ScriptedEndpoint(responder=lambda body: verdict_json(5))
    out = judge(texts, TONE_RUBRIC, endpoint.client(), "scripted", cache=False, checkpoint=False,
                token_budget=700, max_tokens=100, **QUIET)
    skipped = out["judge_status"] == "skipped_budget"
    assert skipped.any() and (out["judge_status"][~skipped] == "ok").all()
    assert out.loc[skipped, "judge_pass"].isna().all() and endpoint.calls == int((~skipped).sum())


def test_judge_input_mistakes_are_clear():
    with pytest.raises(MarketlabError, match="no 'copy' column"):
        judge(pd.DataFrame({"text": ["x"]}), TONE_RUBRIC, ScriptedEndpoint().client(), "scripted", text="copy")
    with pytest.raises(MarketlabError, match="not a Rubric"):
        judge(pd.DataFrame({"text": ["x"]}), "tone", ScriptedEndpoint().client(), "scripted")


def test_pairwise_randomises_the_order_with_a_seed_and_maps_the_winner_back():
    a = pd.DataFrame({"sku": [f"RO-{i}" for i in range(20)], "text": [f"Version A text {i}." for i in range(20)]})
    b = a.assign(text=[f"Version B text {i}." for i in range(20)])

    def pick_b(body):  # the judge always prefers B, wherever it is shown
        content = user_text(body)
        first_is_b = content.index("Version B") < content.index("Version A")
        return json.dumps({"findings": "B is calmer", "better": "first" if first_is_b else "second",
                           "reason": "Calmer."})

    endpoint = ScriptedEndpoint(responder=pick_b)
    out = pairwise(a, b, TONE_RUBRIC, endpoint.client(), "scripted", seed=4, cache=False, checkpoint=False, **QUIET)
    assert out["winner"].tolist() == ["b"] * 20
    assert set(out["shown_first"]) == {"a", "b"}  # both orders used
    again = pairwise(a, b, TONE_RUBRIC, endpoint.client(), "scripted", seed=4, cache=False, checkpoint=False, **QUIET)
    assert again["shown_first"].tolist() == out["shown_first"].tolist()
    other = pairwise(a, b, TONE_RUBRIC, endpoint.client(), "scripted", seed=5, cache=False, checkpoint=False, **QUIET)
    assert other["shown_first"].tolist() != out["shown_first"].tolist()
    for body, shown in zip(endpoint.requests[:20], out["shown_first"]):
        content = user_text(body)
        assert (content.index("Version A") < content.index("Version B")) == (shown == "a")
    assert (out["judge_prompt"] == TONE_RUBRIC.pairwise_prompt_id).all() and (out["judge_model"] == "scripted").all()
    summary = compare(results({"length": [True] * 20}), results({"length": [True] * 20}), pairwise=out).pairwise
    assert summary.b_win_rate == 1.0
    with pytest.raises(MarketlabError, match="not on the same inputs"):
        pairwise(a, b.iloc[::-1], TONE_RUBRIC, endpoint.client(), "scripted")


# -- the judge, through the real local model server --------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_judge_on_the_built_in_model_records_every_verdict(local_base_url, rated):
    # The six shortest texts keep the run short; only the shape and the recording are asserted.
    texts = rated.loc[rated["text"].str.len().nsmallest(6).index]
    before = len(llm.usage_table())
    out = judge(texts, TONE_RUBRIC, llm.client(), progress=False, request_timeout=600, workers=1)
    assert out.index.equals(texts.index)
    assert set(out["judge_status"]) <= set(STATUSES)
    assert (out["judge_model"] == llm.model_name()).all() and (out["judge_prompt"] == TONE_RUBRIC.prompt_id).all()
    assert (out["rubric_version"] == TONE_RUBRIC.version).all()
    answered = out["judge_status"].isin(["ok", "repaired"])
    assert out.loc[answered, "judge_score"].between(1, 5).all()
    assert (out.loc[answered, "judge_pass"] == (out.loc[answered, "judge_score"] >= TONE_RUBRIC.pass_mark)).all()
    assert out.loc[~answered, "judge_pass"].isna().all() and (out.loc[~answered, "judge_error"] != "").all()
    assert out.loc[answered, "judge_reason"].map(lambda r: len(r) <= 100).all()
    made = len(llm.usage_table()) - before
    assert made == out["judge_calls"].sum() >= 6
    again = judge(texts, TONE_RUBRIC, llm.client(), progress=False, request_timeout=600, workers=1)
    # The second run serves every answered row from the cache and asks again only where the first failed
    # (the tiny model may run past the reply's length on a row: that must not be kept as its verdict).
    assert (again.loc[answered, "judge_calls"] == 0).all()
    assert len(llm.usage_table()) - before - made == again.loc[~answered, "judge_calls"].sum()
    pd.testing.assert_series_equal(again.loc[answered, "judge_score"], out.loc[answered, "judge_score"])
