"""Faithfulness on any shop's catalogue: the general claim forms, yes/no spec lines, not_true paraphrases,
glued numbers, the direction of a reason, the unchecked outcome, and vocabulary packs.

The products here are written for these tests; none comes from the held-back shop sets.
"""

from __future__ import annotations

import pandas as pd
import pytest

from marketlab.evaluate import (Acceptance, VocabularyError, check_quality, compare, faithfulness, load_vocabulary,
                                run_checks)
from marketlab.evaluate.vocabulary import parse_vocabulary
from marketlab.errors import MarketlabError

GENERAL = faithfulness(vocabulary=None)


def product(key_specs: str = "", materials: str = "", certifications: str = "", not_true: str = "",
            name: str = "Test Item") -> dict:
    return {"sku": "T-1", "name": name, "category": "things", "price_usd": 10.0, "weight_g": None,
            "materials": materials, "key_specs": key_specs, "certifications": certifications, "not_true": not_true}


def flagged(text: str, row: dict, check=GENERAL) -> list[str]:
    return [c.text.lower() for c in check.claims(text, row) if not c.supported]


# -- general claim forms, with no pack -------------------------------------------------------------
@pytest.mark.parametrize(("text", "claim", "supporting_row"), [
    ("The bottle is BPA-free.", "bpa-free", product("BPA-free: yes")),
    ("An oven-safe dish for roasts.", "oven-safe", product("Oven safe: up to 200 C")),
    ("The lid is leak-proof on the go.", "leak-proof", product("Leak-proof: yes")),
    ("A scratch resistant screen.", "scratch resistant", product("Scratch resistant: yes")),
    ("Dermatologist-tested formula.", "dermatologist-tested", product("Dermatologist tested: yes")),
    ("Alexa compatible out of the box.", "alexa compatible", product("Alexa compatible: yes")),
    ("It is GDPR compliant.", "gdpr compliant", product(certifications="GDPR compliant")),
    ("FDA approved for home use.", "fda approved", product(certifications="FDA approved")),
    ("Fairtrade certified beans.", "fairtrade certified", product(certifications="Fairtrade")),
    ("Clinically proven results.", "clinically proven", product("Clinically proven: yes")),
    ("A gentle wash that is non-comedogenic.", "non-comedogenic", product(materials="non-comedogenic base")),
    ("Comes with a lifetime guarantee.", "lifetime guarantee", product("Warranty: lifetime guarantee")),
    ("Made in Portugal by hand.", "made in portugal", product("Origin: made in Portugal")),
    ("Suitable for vegans and vegetarians.", "vegans", product("Suitable for: vegans and vegetarians")),
    ("Safe to use during pregnancy.", "pregnancy", product("Pregnancy: safe to use during pregnancy")),
    ("Made for oily skin.", "oily skin", product("Skin type: oily")),
    ("It runs on Windows and Linux.", "linux", product("Platforms: Windows and Linux")),
    ("Integrates with Slack.", "slack", product("Integrations: Slack")),
    ("Made with organic oats.", "organic oats", product(materials="organic oats")),
    ("It works offline.", "offline", product("Offline use: works offline")),
])
def test_each_claim_form_is_flagged_without_facts_and_passes_with_them(text: str, claim: str,
                                                                     supporting_row: dict) -> None:
    found = flagged(text, product())
    assert any(claim in f for f in found), (text, found)
    assert GENERAL(text, product(), "web").outcome == "failed"
    assert GENERAL(text, supporting_row, "web").outcome == "passed", GENERAL(text, supporting_row, "web")


@pytest.mark.parametrize(("text", "row"), [
    ("Now 30% lighter than before.", product("Weight: 300 g")),
    ("Lasts 12 hours on one charge.", product("Battery life: 8 h")),
    ("Serves 8 people at once.", product("Serves: 4 people")),
    ("Fits screens from 10 to 14 inches.", product("Screen: 13 inches")),
])
def test_percentages_durations_counts_and_ranges_are_checked(text: str, row: dict) -> None:
    finding = GENERAL(text, row, "web")
    assert finding.outcome == "failed", finding


def test_figures_of_the_row_pass() -> None:
    row = product("Battery life: 12 h; Serves: 8 people; Sugar: 30%")
    assert GENERAL("Lasts 12 hours and serves 8 people, with 30% sugar.", row, "web").outcome == "passed"


def test_every_skin_type_needs_a_row_that_says_all() -> None:
    assert flagged("It suits every skin type.", product("Skin type: oily"))
    assert not flagged("It suits every skin type.", product("Skin type: all"))


# -- spec lines as attribute: value ---------------------------------------------------------------
def test_a_yes_no_spec_line_is_a_fact_both_ways() -> None:
    no, yes = product("Induction: no"), product("Induction: yes")
    finding = GENERAL("It works on induction hobs.", no, "web")
    assert finding.outcome == "failed" and 'the product facts say "Induction: no"' in finding.evidence
    assert GENERAL("It works on induction hobs.", yes, "web").outcome == "passed"
    assert GENERAL("It does not work on induction.", no, "web").outcome == "passed"
    denied = GENERAL("It is not induction-ready.", yes, "web")
    assert denied.outcome == "failed" and "denies" in denied.evidence


def test_a_reason_points_the_right_way() -> None:
    row = product("Dishwasher safe: no")
    finding = GENERAL("It is dishwasher safe.", row, "web")
    assert not finding.passed
    assert "denies" not in finding.evidence and 'say "Dishwasher safe: no"' in finding.evidence


def test_a_bounded_spec_value_is_read_as_a_figure() -> None:
    row = product("Oven safe: up to 180 C")
    assert GENERAL("Oven safe up to 180 C.", row, "web").outcome == "passed"
    assert GENERAL("Oven safe up to 250 C.", row, "web").outcome == "failed"


# -- numbers glued to words -----------------------------------------------------------------------
def test_a_number_after_a_spec_name_is_read_as_that_spec() -> None:
    row = product("pH: 4.5", name="Petal Toner")
    assert GENERAL("A gentle pH 4.5 toner for every morning.", row, "web").outcome == "passed"
    wrong = GENERAL("A gentle pH 5.5 toner.", row, "web")
    assert wrong.outcome == "failed" and "4.5" in wrong.evidence and "toner" not in wrong.evidence


def test_a_figure_named_by_a_spec_in_capitals_is_compared() -> None:
    row = product("SPF: 30")
    assert GENERAL("Daily SPF 30 protection.", row, "web").outcome == "passed"
    assert "30" in GENERAL("Daily SPF 50 protection.", row, "web").evidence


# -- not_true paraphrases --------------------------------------------------------------------------
@pytest.mark.parametrize(("not_true", "paraphrase", "kind"), [
    ("not for use while breastfeeding", "Gentle enough to use throughout breastfeeding.", "ending"),
    ("not for use while pregnant", "A treat during pregnancy.", "ending"),
    ("not for hard foods such as nuts or seeds", "Great for chopping nuts.", "list item"),
    ("cover not microwave safe", "Microwave it with the cover on.", "word order"),
    ("cold wash only", "Fine for a hot wash.", "only"),
    ("do not tumble dry", "Quick in the tumble dryer.", "ending"),
    ("no real-time data", "Watch the numbers in real time.", "hyphen"),
    ("not compatible with Safari", "Install it on Safari.", "telling word"),
])
def test_not_true_catches_paraphrases(not_true: str, paraphrase: str, kind: str) -> None:
    row = product(not_true=not_true)
    finding = GENERAL(paraphrase, row, "web")
    assert finding.outcome == "failed" and f'not_true says "{not_true}"' in finding.evidence, (kind, finding)


@pytest.mark.parametrize(("not_true", "denial"), [
    ("not for use while breastfeeding", "Do not use it while breastfeeding."),
    ("cold wash only", "Wash it cold, then dry it flat."),
    ("do not tumble dry", "Do not put it in the tumble dryer."),
    ("not insulated", "This bottle is not insulated."),
])
def test_saying_what_not_true_says_is_not_flagged(not_true: str, denial: str) -> None:
    assert GENERAL(denial, product(not_true=not_true), "web").outcome == "passed"


def test_synonyms_from_a_pack_reach_not_true_and_facts(tmp_path) -> None:
    pack = tmp_path / "kitchen.yaml"
    pack.write_text("name: kitchen\nsynonyms:\n  - [insulated, keeps drinks cold]\n"
                    "  - [hyaluronic acid, sodium hyaluronate]\n", encoding="utf-8")
    check = faithfulness(vocabulary=str(pack))
    assert check("It keeps drinks cold all day.", product(not_true="not insulated"), "web").outcome == "failed"
    assert GENERAL("It keeps drinks cold all day.", product(not_true="not insulated"), "web").outcome != "failed"
    row = product(materials="sodium hyaluronate")
    assert check("Made with hyaluronic acid.", row, "web").outcome == "passed"
    assert GENERAL("Made with hyaluronic acid.", row, "web").outcome == "failed"


# -- three outcomes --------------------------------------------------------------------------------
def test_a_text_with_no_claim_is_unchecked_never_passed() -> None:
    finding = GENERAL("Lovely, simple and fun.", product("Colour: red"), "web")
    assert finding.outcome == "unchecked" and finding.unchecked and not finding.passed
    assert "no claim recognised" in finding.evidence


def test_restating_a_fact_is_a_checked_claim() -> None:
    assert GENERAL("Colour: red. Lovely.", product("Colour: red"), "web").outcome == "passed"


def test_unchecked_is_counted_apart_in_run_checks_check_quality_and_compare() -> None:
    products = pd.DataFrame([{**product("BPA-free: yes"), "sku": "T-1"}])
    texts = pd.DataFrame({"output_id": ["a", "b", "c"], "sku": ["T-1"] * 3, "channel": ["web"] * 3,
                          "text": ["It is BPA-free.", "It is PFAS-free.", "Lovely and fun."]})
    results = run_checks(texts, products, [GENERAL])
    assert results["outcome"].tolist() == ["passed", "failed", "unchecked"]
    assert results["passed"].tolist() == [True, False, False]
    assert results["unchecked"].tolist() == ["", "", "faithfulness"]
    labels = texts.assign(unsupported_claim=[False, True, False])
    quality = check_quality(results, labels, {"unsupported_claim": "faithfulness"}).iloc[0]
    assert (quality["flagged"], quality["false_pos"], quality["unchecked"]) == (1, 0, 1)
    result = compare(results, results, Acceptance())
    assert (result.unchecked_a, result.unchecked_b) == (1, 1)
    assert "Unchecked" in str(result) and result.pass_rate_b == pytest.approx(1 / 3)


# -- vocabulary packs ------------------------------------------------------------------------------
def test_the_course_uses_the_outdoor_pack_by_name() -> None:
    pack = load_vocabulary("outdoor")
    assert pack.name == "outdoor" and any(f.name == "crampon compatible" for f in pack.features)
    assert [p.name for p in faithfulness().packs] == ["outdoor"]
    assert faithfulness(vocabulary=None).packs == ()


def test_a_pack_adds_its_own_claim_words(tmp_path) -> None:
    pack = tmp_path / "skin.yaml"
    pack.write_text("name: skin\nfeatures:\n  - name: hypoallergenic\n    claim: 'hypoallergenic'\n"
                    "    evidence: 'hypoallergenic'\n", encoding="utf-8")
    text = "Soft and hypoallergenic."
    assert GENERAL(text, product(), "web").outcome == "unchecked"
    assert faithfulness(vocabulary=str(pack))(text, product(), "web").outcome == "failed"
    assert faithfulness(vocabulary=str(pack))(text, product("Hypoallergenic: yes"), "web").outcome == "passed"


@pytest.mark.parametrize(("text", "line", "says"), [
    ("name: x\nfeatures:\n  - name: a\n    claim: '(unclosed'\n", 4, "not a valid pattern"),
    ("name: x\nfeatures:\n  - name: a\n    claim: a\n    colour: red\n", 5, "colour"),
    ("name: x\nsynonyms:\n  - [just one]\n", 3, "two words"),
    ("name: x\nfeatures: [\n  - a: b\n", 3, "not valid YAML"),
    ("- just\n- a list\n", 1, "not a set of fields"),
])
def test_a_malformed_pack_names_the_line(text: str, line: int, says: str) -> None:
    with pytest.raises(VocabularyError) as caught:
        parse_vocabulary(text, "my_pack.yaml")
    assert isinstance(caught.value, MarketlabError)
    message = str(caught.value)
    assert f"my_pack.yaml line {line}" in message and says in message, message


def test_an_unknown_pack_says_which_exist() -> None:
    with pytest.raises(VocabularyError, match="outdoor"):
        load_vocabulary("no-such-pack")


def test_a_pack_teaches_its_units(tmp_path) -> None:
    from marketlab.evaluate.units import quantities

    assert quantities("a 650 fill power down")[0].dim == "fill_power"  # the course's pack, loaded by faithfulness()
    assert quantities("sleeps 4 campers")[0].dim == "#person"
    pack = tmp_path / "bakery.yaml"
    pack.write_text("name: bakery\nunits:\n  - dimension: '#person'\n    words: [diners]\n"
                    "  - dimension: sweetness\n    words: [brix level]\n", encoding="utf-8")
    faithfulness(vocabulary=str(pack))
    assert quantities("serves 6 diners")[0].dim == "#person"
    assert quantities("a 12 brix level")[0].dim == "sweetness"


# -- the optional model verifier: its plumbing, on the scripted endpoint ---------------------------
def test_the_model_verifier_records_model_prompt_and_agreement() -> None:
    import json

    from marketlab.evaluate.verify import PROMPT_ID, VERIFIER_VERSION, verifier_agreement, verify_claims
    from marketlab.llm.testing import Fault, ScriptedEndpoint

    products = pd.DataFrame([{**product("BPA-free: yes", not_true="not insulated"), "sku": "T-1"}])
    texts = pd.DataFrame({"sku": ["T-1"] * 3, "channel": ["web"] * 3,
                          "text": ["It is BPA-free.", "It keeps drinks cold all day.", "Lovely and fun."]})

    def reply(*claims):
        return json.dumps({"claims": [{"claim": c, "verdict": v} for c, v in claims]})

    failed_once = []

    def responder(body):
        sent = body["messages"][-1]["content"]
        if "BPA-free." in sent:
            if not failed_once:
                failed_once.append(True)
                return Fault.server_error()
            return reply(("BPA-free", "supported"))
        if "keeps drinks cold" in sent:
            return reply(("keeps drinks cold", "contradicted"))
        return reply()

    endpoint = ScriptedEndpoint(responder=responder)
    verdicts = verify_claims(texts, products, endpoint.client(), "scripted", cache=False, checkpoint=False,
                             progress=False, show_summary=False)
    assert verdicts["verifier_unsupported"].astype(object).fillna("NA").tolist() == [False, True, "NA"]
    assert verdicts["verifier_calls"].tolist() == [2, 1, 1]
    assert (verdicts["verifier_model"] == "scripted").all() and (verdicts["verifier_prompt"] == PROMPT_ID).all()
    assert (verdicts["verifier_version"] == VERIFIER_VERSION).all()
    sent = next(r for r in endpoint.requests if "BPA-free." in r["messages"][-1]["content"])["messages"][-1]["content"]
    assert "BPA-free: yes" in sent and "not true: not insulated" in sent
    rules = run_checks(texts, products, [GENERAL])
    labels = texts.assign(unsupported_claim=[False, True, False])
    table = verifier_agreement(verdicts, rules, labels).set_index("pair")
    assert table.loc["verifier vs people", "n"] == 2 and table.loc["verifier vs people", "agreement"] == 1.0
    assert table.loc["verifier vs rule check", "n"] == 1  # the rule check left one unchecked, the model another


def test_a_two_word_rule_in_a_long_sentence_does_not_hide_the_claims_before_it() -> None:
    """A rule's span once ran from the top of the text (a sentence found at -1), so a second contradiction
    earlier in the same unpunctuated block was dropped as an overlap (the recorded Lab 1 reply RO-1017)."""
    from marketlab.evaluate.facts import Faithfulness

    product = {"name": "Arete -5 Down Sleeping Bag", "category": "sleeping bags",
               "key_specs": "Comfort temperature: -5 C", "not_true": "not waterproof; not machine washable"}
    text = "Arete sleeping bag\nKey specs:\nFlush lid waterproofing\nMachine washable\nPacked weight: 1.07 kg"
    rules = {c.rule for c in Faithfulness(vocabulary=None).claims(text, product) if c.kind == "not_true"}
    assert rules == {"not waterproof", "not machine washable"}
