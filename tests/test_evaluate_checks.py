"""marketlab.evaluate's deterministic checks, faithfulness, run_checks, check_quality and the runner's checks.

Measured on the real data: the rated outputs with their people's defect labels, and the holdout
(other products, another brand voice file). Planted claims show what each check catches and that
clean copy passes; bad input gets a message that says what is wrong and what to do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from pydantic import BaseModel, Field

from marketlab import data, reference
from marketlab.evaluate.checks import (Finding, banned_words, disclaimers, hype, length, make_check, repetition,
                                       required_facts, valid_json)
from marketlab.evaluate.errors import EvaluateInputError
from marketlab.evaluate.facts import claims, faithfulness, parse_limit
from marketlab.evaluate.quality import check_quality
from marketlab.evaluate.suite import DEFAULT_CHECKS, DEFECT_CHECKS, run_checks
from marketlab.evaluate.units import quantities, same_quantity
from marketlab.evaluate.voice import BrandVoice
from marketlab.llm.testing import ScriptedEndpoint
from marketlab.workflow import Rules, load_workflow, run_batch, save_workflow, summarize

REPO = Path(__file__).resolve().parent.parent
HOLDOUT = REPO / "graders" / "holdout"
CODE_CATCHABLE = ("unsupported_claim", "banned_word", "over_length", "missing_required_fact", "repetition")

# A clean web description of RO-1001 (Moraine 45 Alpine Pack), written from its facts: 40-120 words,
# the name and the headline spec (Volume: 45 L), no banned word, no claim the facts do not support.
CLEAN = ("Meet the Moraine 45 Alpine Pack, made for climbers who start before dawn. Volume: 45 L, and it weighs "
         "1320 g, so it stays light on long approaches. The back length adjusts from 42 to 54 cm, and it takes a "
         "hydration bladder. The body is 210D recycled nylon, and it carries Global Recycled Standard "
         "certification. It is not waterproof, so pack a dry bag; a rain cover is sold separately. Add it to your "
         "kit list before the next trip.")
PLANTED = {  # defect kind -> (the change, the check that must catch it)
    "unsupported_claim": (lambda t: t.replace("It is not waterproof, so pack a dry bag; a rain cover is sold "
                                              "separately.", "It is fully waterproof and comes with a rain cover."),
                          "faithfulness"),
    "banned_word": (lambda t: t + " Unbeatable value for the money.", "banned_words"),
    "over_length": (lambda t: t + " " + " ".join(f"On day {n} of the trip it still carried well." for n in
                                                 ("one", "two", "three", "four", "five", "six", "seven")),
                    "length"),
    "missing_required_fact": (lambda t: t.replace("Volume: 45 L, and it weighs", "It weighs"), "required_facts"),
    "repetition": (lambda t: t + " Add it to your kit list before the next trip.", "repetition"),
    "wrong_tone": (lambda t: t + " Grab it NOW!!", "hype"),
}


@pytest.fixture(scope="module")
def products() -> pd.DataFrame:
    return data.load("products")


@pytest.fixture(scope="module")
def pack(products: pd.DataFrame) -> dict:
    return products.set_index("sku", drop=False).loc["RO-1001"].to_dict()


def _row(products: pd.DataFrame, sku: str) -> dict:
    return products.set_index("sku", drop=False).loc[sku].to_dict()


# -- the bar, on real labelled data ---------------------------------------------------------------
@pytest.mark.parametrize("folder", [None, HOLDOUT], ids=["course", "holdout"])
def test_default_checks_find_every_code_catchable_defect_kind(folder: Path | None) -> None:
    rated = data.load("rated_outputs", folder)
    results = run_checks(rated, data.load("products", folder), voice=data.load_brand_voice(folder))
    quality = check_quality(results, rated).set_index("defect")
    for defect in CODE_CATCHABLE:
        row = quality.loc[defect]
        assert row["labelled"] >= 5, f"{defect}: too few labelled texts to measure"
        assert row["recall"] >= 0.95 and row["precision"] >= 0.9, f"{defect}: {row.to_dict()}"


@pytest.mark.parametrize("folder", [None, HOLDOUT], ids=["course", "holdout"])
def test_hype_check_is_precise_but_cannot_hear_slang(folder: Path | None) -> None:
    rated = data.load("rated_outputs", folder)
    results = run_checks(rated, data.load("products", folder), voice=data.load_brand_voice(folder))
    tone = check_quality(results, rated).set_index("defect").loc["wrong_tone"]
    assert tone["precision"] >= 0.9
    assert 0.3 <= tone["recall"] < 0.9, "the lesson: a tone check built on caps and '!!' misses a lot"
    missed = rated[rated["wrong_tone"] & results["hype"]]
    assert len(missed) == tone["false_neg"]
    jargon = data.load_brand_voice(folder)["tone"]["jargon_to_avoid"]
    for text in missed["text"]:  # what it misses is hype without shouting: slang
        assert "!!" not in text and not any(word in text.lower() for word in jargon)


def test_results_are_tidy_same_index_and_order(products: pd.DataFrame) -> None:
    rated = data.load("rated_outputs").sample(frac=1.0, random_state=4)
    rated.index = [f"row-{i}" for i in range(len(rated))]
    results = run_checks(rated, products)
    assert list(results.index) == list(rated.index)
    assert list(results.columns) == ["output_id", "sku", "channel", "prompt_version", "rater_id",
                                     *(c.name for c in DEFAULT_CHECKS), "passed", "outcome", "unchecked", "reason"]
    checks = [c.name for c in DEFAULT_CHECKS]
    assert (results["passed"] == results[checks].all(axis=1)).all()
    assert ((results["reason"] == "") == results["passed"]).all()
    failed = results[~results["faithfulness"]].iloc[0]
    assert "faithfulness: " in failed["reason"] and " — " in failed["reason"]
    assert set(DEFECT_CHECKS) == set(data.DEFECTS) and DEFECT_CHECKS["unsupported_claim"] == "faithfulness"


# -- planted defects ------------------------------------------------------------------------------
def test_clean_copy_passes_every_default_check(pack: dict) -> None:
    for check in DEFAULT_CHECKS:
        assert check(CLEAN, pack, "web") == Finding(True), check.name


@pytest.mark.parametrize("defect", list(PLANTED))
def test_each_planted_defect_is_caught_by_its_check_only(pack: dict, defect: str) -> None:
    change, name = PLANTED[defect]
    text = change(CLEAN)
    failing = {check.name: check(text, pack, "web") for check in DEFAULT_CHECKS}
    failing = {k: v for k, v in failing.items() if not v.passed}
    assert list(failing) == [name], failing
    assert failing[name].evidence


def test_evidence_names_the_claim_and_the_fact(pack: dict) -> None:
    found = faithfulness()(PLANTED["unsupported_claim"][0](CLEAN), pack, "web")
    assert '"fully waterproof" — not_true says "not waterproof"' in found.evidence
    assert '"rain cover" — not_true says "rain cover not included"' in found.evidence
    assert length()(CLEAN + " word" * 80, pack, "web").evidence.endswith("web allows 120")
    assert banned_words()("A CHEAP, cheap pack", pack, "web").evidence == '"cheap"'


def test_numbers_are_compared_after_unit_conversion(pack: dict) -> None:
    check = faithfulness()
    assert check("It weighs 1.32 kg.", pack, "web").passed
    assert check("It weighs 1320 g.", pack, "web").passed
    assert check("It weighs about 1.3 kg.", pack, "web").passed  # rounding is not inventing
    found = check("Weights of 1320g to 1640g, depending on size.", pack, "web")
    assert not found.passed and '"1640g"' in found.evidence and '"1320g"' not in found.evidence
    assert not check("It weighs 2 kg.", pack, "web").passed
    assert not check("It holds 50 L.", pack, "web").passed
    assert check("Backs from 42 to 54 cm, or 48 cm in between.", pack, "web").passed  # inside the range
    kg, g = quantities("1.32 kg")[0], quantities("1320 g")[0]
    assert same_quantity(kg, g) and same_quantity(g, kg) and kg.dim == "mass"
    temp = quantities("23 °F")[0]
    assert temp.dim == "temp" and round(temp.base) == -5


def test_a_figure_given_for_the_wrong_spec_is_flagged(products: pd.DataFrame) -> None:
    tent = _row(products, "RO-1008")  # Packed weight: 14.56 kg; Capacity: 6 person
    assert not faithfulness()("A tent with a capacity of 14.56 kg.", tent, "web").passed
    assert faithfulness()("A packed weight of 14.56 kg.", tent, "web").passed


def test_a_figure_at_another_rate_or_for_another_spec_is_flagged(products: pd.DataFrame) -> None:
    pack, boot = _row(products, "RO-1025"), _row(products, "RO-1038")  # 22 L daypack; boot with 4 mm lugs, 8 mm drop
    found = faithfulness()("It holds 22 litres of water per day.", pack, "web")
    assert not found.passed and "not per day" in found.evidence
    assert faithfulness()("It holds 22 litres.", pack, "web").passed
    assert "the facts give 4 mm for the depth" in faithfulness()("A lug depth of 8 mm.", boot, "web").evidence
    assert faithfulness()("A drop of 8 mm and a lug depth of 4 mm.", boot, "web").passed


def test_denying_what_the_facts_say_is_flagged(products: pd.DataFrame) -> None:
    jacket = _row(products, "RO-1028")  # OEKO-TEX Standard 100, proven waterproof, no eco certification
    found = faithfulness()("It is not certified by OEKO-TEX Standard 100.", jacket, "web")
    assert not found.passed and "denies" in found.evidence
    assert not faithfulness()("It is not waterproof.", jacket, "web").passed
    assert faithfulness()("It does not have an eco certification.", jacket, "web").passed


def test_codes_and_required_disclaimers_are_not_invented_numbers(products: pd.DataFrame) -> None:
    bag = _row(products, "RO-1017")  # a sleeping bag; its disclaimer cites EN ISO 23537
    disclaimer = data.load_brand_voice()["required_disclaimers"][0]["text"]
    assert "23537" in disclaimer
    assert faithfulness()(f"Comfort temperature -5 C. {disclaimer}", bag, "web").passed
    lamp = _row(products, "RO-1003")  # Water resistance: IPX7
    assert faithfulness()("Rated IPX7, with 350 lumen on full power.", lamp, "web").passed
    assert quantities("EN ISO 23537 and IPX7") == []


@pytest.mark.parametrize(("limit", "claim", "denial"), [
    ("not waterproof", "A waterproofed shell.", "It is not waterproof."),
    ("no eco certification", "A sustainable choice.", "It has no eco certification yet."),
    ("rain cover not included", "Comes with a rain cover.", "Rain cover sold separately."),
    ("not suitable below -5 C", "Warm down to -12 C.", "Not suitable below -5 C."),
    ("does not sleep more than 2 people", "It sleeps 4 with room to spare.", "It sleeps 2."),
    ("not a 4-season tent", "A true four-season shelter.", "It is not a four-season tent."),
    ("not crampon compatible", "Ready for crampons.", "Not made for crampons."),
    ("DWR is not PFC-free", "A PFC-free finish.", "The DWR is not PFC-free."),
    ("seams not taped", "Fully taped seams.", "The seams are not taped."),
    ("does not contain down", "Filled with down for warmth.", "It has no down fill."),
    ("not designed for loads over 5 kg", "Carries loads of 12 kg.", "Keep loads under 5 kg."),
])
def test_not_true_phrases_are_read_as_general_rules(limit: str, claim: str, denial: str) -> None:
    product = {"sku": "X-1", "name": "Test Item", "category": "tents", "key_specs": "Season: 3-season",
               "not_true": limit, "certifications": "", "materials": "nylon"}
    assert parse_limit(limit, BrandVoice.load().proof_rules()) is not None
    flagged = [c for c in claims(claim, product) if c.kind == "not_true"]
    assert flagged and flagged[0].rule == limit, claim
    assert not [c for c in claims(denial, product) if c.kind == "not_true"], denial


def test_claims_needing_proof_follow_the_brand_voice(products: pd.DataFrame) -> None:
    shoe, pack = _row(products, "RO-1002"), _row(products, "RO-1001")  # shoe: no eco cert; pack: GRS
    assert not faithfulness()("An eco-friendly trail shoe.", shoe, "web").passed
    assert faithfulness()("An eco-friendly pack.", pack, "web").passed
    assert faithfulness()("A waterproof shoe.", shoe, "web").passed  # Waterproof membrane: yes
    ultralight = [c for c in claims("An ultralight pack.", pack) if c.kind == "proof"]
    assert ultralight and not ultralight[0].supported  # 1320 g is over the 700 g backpack threshold
    made_up = [c for c in claims("Made of merino and Gore-Tex, with a lifetime warranty.", pack) if not c.supported]
    assert {c.text.lower() for c in made_up} >= {"merino", "gore-tex", "lifetime warranty"}


def test_product_name_and_own_fact_lines_are_not_claims(products: pd.DataFrame) -> None:
    jacket = _row(products, "RO-1014")  # "Kettle Lake 3L Waterproof Jacket", proven waterproof anyway
    boot = _row(products, "RO-1042") if "RO-1042" in set(products["sku"]) else None
    assert faithfulness()(f"The {jacket['name']} has fully taped seams.", jacket, "web").passed
    if boot is not None and "Waterproof membrane: no" in boot["key_specs"]:
        assert faithfulness()("- Waterproof membrane: no", boot, "marketplace").passed


def test_repetition_and_hype_details(pack: dict) -> None:
    assert not repetition()("It is really, really, really light.", pack, "web").passed
    assert not repetition()("Take the the pack.", pack, "web").passed
    assert repetition()("I had had enough. Shop now. Shop now.", pack, "web").passed  # two-word lines may repeat
    assert hype()("Rated IPX7 with a USB-C port and DWR finish.", pack, "web").passed
    assert not hype()("This solution leverages synergy.", pack, "web").passed
    assert "jargon" in hype()("It leverages our best-of-breed design.", pack, "web").evidence


def test_required_facts_and_disclaimers_per_channel(products: pd.DataFrame, pack: dict) -> None:
    facts = required_facts()
    assert facts("The Moraine 45 Alpine Pack holds 45 litres.", pack, "email").passed  # 45 litres == 45 L
    assert "headline spec" in facts("The Moraine 45 Alpine Pack.", pack, "web").evidence
    assert facts("The Moraine 45 Alpine Pack.", pack, "social").passed  # social needs only the name
    assert "product name" in facts("A 45 L pack.", pack, "social").evidence
    bag = _row(products, "RO-1017")
    assert "temperature_rating" in disclaimers()("A warm bag.", bag, "web").evidence
    assert disclaimers()("A warm bag.", bag, "email").passed  # email needs no disclaimer


def test_valid_json_with_and_without_a_schema() -> None:
    class Copy(BaseModel):
        headline: str = Field(max_length=10)

    assert valid_json()('{"a": 1}', None, "web").passed
    assert "not valid JSON" in valid_json()("{oops", None, "web").evidence
    assert valid_json(Copy)('{"headline": "Short"}', None, "web").passed
    assert "headline" in valid_json(Copy)('{"headline": "Far too long for it"}', None, "web").evidence
    with pytest.raises(EvaluateInputError, match="not a valid JSON schema"):
        valid_json({"type": 12})


# -- your own checks, and bad input ---------------------------------------------------------------
def test_make_check_wraps_a_learners_function(products: pd.DataFrame) -> None:
    shouty = make_check("no_exclamation", lambda text, product, channel: "has '!'" if "!" in text else None,
                        describe="No exclamation marks.")
    broken = make_check("broken", lambda text, product, channel: 1 / 0)
    rated = data.load("rated_outputs").head(40)
    out = run_checks(rated, products, [shouty, broken])
    assert (out["no_exclamation"] == ~rated["text"].str.contains("!")).all()
    assert not out["broken"].any() and out["reason"].str.contains("broken: the check stopped with ZeroDivision").all()
    with pytest.raises(EvaluateInputError, match="cannot be a column name"):
        make_check("no good", lambda *a: None)
    with pytest.raises(EvaluateInputError, match="not a function"):
        make_check("fine", "not callable")


def test_missing_text_is_a_failed_row_not_a_crash(products: pd.DataFrame) -> None:
    rated = data.load("rated_outputs").head(3).copy()
    rated["text"] = rated["text"].astype(object)
    rated.loc[rated.index[0], "text"] = None
    rated.loc[rated.index[1], "text"] = 42
    out = run_checks(rated, products, [banned_words(), faithfulness()])
    assert not out.iloc[0]["passed"] and out.iloc[0]["reason"] == "banned_words: no text; faithfulness: no text"
    assert "not text (a int)" in out.iloc[1]["reason"]


@pytest.mark.parametrize(("change", "message"), [
    (lambda o, p: (o.drop(columns="text"), p), "no 'text' column"),
    (lambda o, p: (o.drop(columns="sku"), p), "no 'sku' column"),
    (lambda o, p: (o.assign(sku="NOPE-1"), p), "not in the products table, e.g. 'NOPE-1' (row 1)"),
    (lambda o, p: (o, p.drop(columns="sku")), "products table has no 'sku' column"),
    (lambda o, p: (o["text"], p), "not a table"),
    (lambda o, p: (o.assign(channel=3), p), "'channel' column has a int"),
])
def test_bad_tables_get_a_message_with_a_fix(products: pd.DataFrame, change, message: str) -> None:
    outputs, table = change(data.load("rated_outputs").head(5), products)
    with pytest.raises(EvaluateInputError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        run_checks(outputs, table)
    assert caught.value.fix


def test_bad_checks_and_labels_get_a_message(products: pd.DataFrame) -> None:
    rated = data.load("rated_outputs").head(5)
    with pytest.raises(EvaluateInputError, match="not a check"):
        run_checks(rated, products, [length(), "banned_words"])
    with pytest.raises(EvaluateInputError, match="Two checks are called 'length'"):
        run_checks(rated, products, [length(), length()])
    with pytest.raises(EvaluateInputError, match="both checks= and voice="):
        run_checks(rated, products, [length()], voice=data.load_brand_voice())
    results = run_checks(rated, products)
    with pytest.raises(EvaluateInputError, match="5 rows and labels has 4"):
        check_quality(results, rated.head(4))
    with pytest.raises(EvaluateInputError, match="in row 2, not True or False"):
        check_quality(results, rated.assign(banned_word=["True", "maybe", "False", "True", "False"]))
    with pytest.raises(EvaluateInputError, match="no column for the check"):
        check_quality(results[["output_id", "length"]], rated)
    with pytest.raises(EvaluateInputError, match="channel 'fax'"):
        BrandVoice.load().limits("fax")


def test_check_quality_counts_agree_with_sklearn(products: pd.DataFrame) -> None:
    rated = data.load("rated_outputs")
    quality = check_quality(run_checks(rated, products), rated).set_index("defect")
    row = quality.loc["banned_word"]
    assert row["true_pos"] + row["false_neg"] == row["labelled"] == rated["banned_word"].sum()
    assert row["true_pos"] + row["false_pos"] == row["flagged"]
    assert row["recall"] == pytest.approx(row["true_pos"] / row["labelled"])


# -- the runner evaluates as it goes --------------------------------------------------------------
class ProductCopy(BaseModel):
    headline: str = Field(description="one short line that names the product", max_length=60)
    description: str = Field(description="the web description")


def _reply(description: str) -> str:
    return json.dumps({"headline": "A pack", "description": description})


def test_run_batch_adds_check_columns_and_keeps_status(products: pd.DataFrame, fresh_home: Path) -> None:
    rows = products.iloc[[0, 10, 2]]  # RO-1001, RO-1011 (a daypack that is not waterproof), RO-1003
    replies = [_reply(CLEAN), _reply("The pack is fully waterproof and cheap."), "not json", "still not json"]
    out = run_batch(rows, reference.build_messages, ProductCopy, ScriptedEndpoint(replies).client(), "scripted",
                    brief=reference.load_brief(), include=["sku"], workers=1, cache=False, checkpoint=False,
                    progress=False, show_summary=False, checks=[banned_words(), faithfulness()])
    assert list(out["status"]) == ["ok", "ok", "failed"]  # the shape verdict, unchanged by the checks
    assert list(out["checks"]) == ["passed", "failed", "not checked"]
    assert out["check_banned_words"].tolist()[:2] == [True, False] and pd.isna(out["check_banned_words"].iloc[2])
    assert "faithfulness: " in out["check_reason"].iloc[1] and "cheap" in out["check_reason"].iloc[1]
    summary = summarize(out)
    assert summary.checked == 2 and summary.checks_passed == 1
    assert summary.check_rates == {"banned_words": 0.5, "faithfulness": 0.5}
    assert "Pass rate by check: banned_words 50%, faithfulness 50%" in str(summary)


def test_run_batch_refuses_bad_check_settings_before_any_call(products: pd.DataFrame) -> None:
    endpoint = ScriptedEndpoint()
    with pytest.raises(Exception, match="check_text='body' is not a field of ProductCopy"):
        run_batch(products.head(1), reference.build_messages, ProductCopy, endpoint.client(), "scripted",
                  brief=reference.load_brief(), checks=[length()], check_text="body")
    with pytest.raises(EvaluateInputError, match="not a list of checks"):
        run_batch(products.head(1), reference.build_messages, ProductCopy, endpoint.client(), "scripted",
                  brief=reference.load_brief(), checks=length())
    assert endpoint.calls == 0


def test_saved_workflow_runs_its_checks(tmp_path: Path, fresh_home: Path, products: pd.DataFrame) -> None:
    brief = reference.load_brief()
    rules = Rules.from_brief(brief, "description").with_banned_words(["cheap"])
    paths = save_workflow(brief, reference.build_messages, ProductCopy, rules, {"max_tokens": 300}, here=tmp_path)
    text = paths[0].read_text()
    assert "CHECKS = [banned_words(RULES.banned_words), faithfulness()]" in text
    module = load_workflow(paths[0])
    endpoint = ScriptedEndpoint([_reply(CLEAN), _reply(CLEAN.replace("not waterproof", "waterproof"))])
    options = dict(model="scripted", include=["sku"], workers=1, cache=False, checkpoint=False, progress=False,
                   show_summary=False)
    out = module.run(products.head(1), endpoint.client(), **options)
    assert list(out["checks"]) == ["passed"] and bool(out["check_faithfulness"].iloc[0])
    bare = module.run(products.head(1), endpoint.client(), checks=None, **options)
    assert "checks" not in bare.columns and list(bare["status"]) == ["ok"]


def test_a_check_maker_without_brackets_is_named_with_the_fix() -> None:
    """Issue 26: 'Item 3 of checks (<function required_facts at 0x...>) is not a check' said nothing useful."""
    from marketlab.evaluate import banned_words, required_facts
    from marketlab.evaluate.checks import check_list
    from marketlab.evaluate.errors import EvaluateInputError

    with pytest.raises(EvaluateInputError) as caught:
        check_list([banned_words(), required_facts])
    assert caught.value.fix == "Add the brackets: required_facts()." and "0x" not in caught.value.problem


def test_a_comparison_where_nothing_passes_names_no_winner() -> None:
    """Issue 26: 'B passes 0% of texts, A 0% (+0 points): B is better than A'."""
    from marketlab.evaluate.compare import Criterion, _verdict

    criteria = [Criterion("pass rate (every check)", 0.9, 0.0, False, False),
                Criterion("'length' pass rate", 0.5, 0.6, True, False)]  # B meets one criterion A did not
    decision, reason = _verdict(criteria, 0.0, 0.0, (-0.1, 0.1))
    assert decision == "stop" and "neither is better" in reason and "better than A" not in reason


def test_the_trust_check_refuses_a_rule_that_drops_the_boundary() -> None:
    """Issue 26: `kappa > 0.6` passed the check of a rule that says 'at least 0.6'."""
    from marketlab.checks.lab03 import check_trust

    assert not check_trust(lambda a, k, b: a > b and k > 0.6, strict=False, quiet=True).passed
    assert check_trust(lambda a, k, b: a > b and k >= 0.6, strict=False, quiet=True).passed
