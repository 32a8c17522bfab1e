"""marketlab.commission: the questions, the extraction schema, quote checks, the extractor, rules and comparison."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from marketlab import commission, data, llm
from marketlab.artifacts import ArtifactError
from marketlab.brief import is_measurable
from marketlab.commission import FREQUENT, CommissionError, ProposalAnswers, verify_quote
from marketlab.commission.extract import RESULT_COLUMNS
from marketlab.llm.testing import Fault, ScriptedEndpoint
from marketlab.workflow import STATUSES

HOLDOUT = Path(__file__).resolve().parent.parent / "graders" / "holdout"
SCRIPTED = dict(cache=False, checkpoint=False, show_summary=False, request_timeout=60.0)  # a bound, not a measure


def simple_rules(a: ProposalAnswers) -> dict[str, int]:
    """Rules for the tests: 2 when a section has its key facts, 1 when it has some, else 0."""
    t, m, r, i, p = (a.training_data, a.monitoring, a.retraining_owner, a.integration, a.production_references)
    main = [i.crm, i.marketing_automation, i.warehouse]
    return {
        "training_data": 2 if t.data_sources and t.refresh in FREQUENT else (1 if t.data_sources else 0),
        "monitoring": 2 if m.effectiveness_rates and m.alert_thresholds else (1 if m.effectiveness_rates else 0),
        "retraining_owner": 2 if is_measurable(r.trigger) and r.retrained_by else (1 if r.trigger else 0),
        "integration": 2 if main.count("specific") >= 2 else (1 if "specific" in main else 0),
        "production_references": min(2, len(p.production_systems)),
    }


@pytest.mark.parametrize("directory", [None, HOLDOUT], ids=["lab", "holdout"])
def test_reference_extractions_fit_the_schema_and_quote_their_proposals_word_for_word(directory):
    extractions = commission.load_extractions(directory)
    proposals = {p["proposal_id"]: p for p in data.load_proposals(directory)}
    assert sorted(extractions) == sorted(proposals), "one reference extraction per scored proposal"
    raw = json.loads((data.datasets_dir(directory) / "proposals" / "extractions.json").read_text())
    for item in raw["proposals"]:
        ProposalAnswers.model_validate(item["answers"])  # strict: extra or missing fields fail
        assert item["vendor"] == proposals[item["proposal_id"]]["vendor"]
    for proposal_id, answers in extractions.items():
        for question_id in commission.QUESTION_IDS:
            section = answers.section(question_id)
            found = verify_quote(section.evidence, proposals[proposal_id]["text"])
            assert found.status == "exact", (proposal_id, question_id, section.evidence)
            assert section.answer.strip()


def test_the_questions_follow_the_scorecard_columns_and_each_has_a_schema():
    assert tuple(q.id for q in commission.QUESTIONS) == data.SCORECARD_QUESTIONS == commission.QUESTION_IDS
    assert tuple(commission.SECTION_SCHEMAS) == commission.QUESTION_IDS
    with pytest.raises(CommissionError, match="training_data"):
        commission.question("pricing")


def test_a_bad_extractions_file_names_the_proposal_and_the_field(tmp_path: Path):
    folder = tmp_path / "proposals"
    folder.mkdir()
    good = json.loads((data.datasets_dir() / "proposals" / "extractions.json").read_text())
    good["proposals"][1]["answers"]["monitoring"]["reporting"] = "every now and then"
    (folder / "extractions.json").write_text(json.dumps(good))
    with pytest.raises(CommissionError, match=r"P2: monitoring\.reporting"):
        commission.load_extractions(tmp_path)


TEXT = ("## Monitoring\nWe report rates, not totals: the share of recommendations that lead to an\n"
        "add-to-cart, every week on one **dashboard**. Alerts fire below 5 points.")


@pytest.mark.parametrize("quote, status", [
    ("We report rates, not totals: the share of recommendations that lead to an add-to-cart", "exact"),
    ("we report RATES not totals the share of recommendations that lead to an add to cart", "exact"),
    ("We report rates, not totals: the share of our recommendations that leads to an add-to-cart", "close"),
    ("We report rates ... every week on one dashboard", "exact"),
    ("We report rates ... every month on a dashboard for the board", "not found"),
    ("We guarantee a 40% lift in conversions within the first month.", "not found"),
    ("every week", "too short"),
    ("", "none given"),
    (None, "none given"),
])
def test_a_quote_is_verified_only_when_the_proposal_holds_it(quote, status):
    found = verify_quote(quote, TEXT)
    assert found.status == status
    assert found.verified == (status in ("exact", "close"))


def _reference_replies(proposals: list[dict], invent: tuple[str, str] | None = None, broken: tuple[str, str] | None = None):
    """A responder answering each request with the reference section of the proposal found in the messages."""
    extractions = commission.load_extractions()
    schema_to_question = {s.__name__: q for q, s in commission.SECTION_SCHEMAS.items()}

    def respond(body: dict):
        question_id = schema_to_question[body["response_format"]["json_schema"]["name"]]
        sent = json.dumps(body["messages"])
        proposal_id = next(p["proposal_id"] for p in proposals if p["vendor"] in sent)
        if (proposal_id, question_id) == broken:
            return Fault.malformed_json()
        section = extractions[proposal_id].section(question_id).model_dump()
        if (proposal_id, question_id) == invent:
            section["evidence"] = "We guarantee a forty percent lift in conversions within the first month."
        return json.dumps(section)

    return respond


def test_extract_gives_one_row_per_proposal_and_question_and_flags_invented_quotes():
    proposals = data.load_proposals()[:3]
    endpoint = ScriptedEndpoint(responder=_reference_replies(proposals, invent=("P2", "monitoring")))
    table = commission.extract(proposals, endpoint.client(max_retries=0), "scripted", **SCRIPTED)
    assert len(table) == 15 and endpoint.calls == 15
    assert list(zip(table["question"], table["proposal_id"]))[:4] == [
        ("training_data", "P1"), ("training_data", "P2"), ("training_data", "P3"), ("monitoring", "P1")]
    assert set(table.columns) >= set(RESULT_COLUMNS)
    assert (table["status"] == "ok").all()
    invented = table[(table["proposal_id"] == "P2") & (table["question"] == "monitoring")].iloc[0]
    assert invented["evidence_check"] == "not found" and not invented["verified"]
    assert table.drop(invented.name)["verified"].all()
    p3 = table[(table["proposal_id"] == "P3") & (table["question"] == "integration")].iloc[0]
    assert p3["facts"]["crm"] == "specific" and "Salesforce" in p3["facts"]["systems_named"]
    first = endpoint.requests[0]
    assert first["response_format"]["json_schema"]["name"] == "TrainingData"
    # The rules, then the question's schema instruction (the same for every proposal), before the proposal.
    assert first["messages"][0]["content"].startswith(commission.EXTRACTION_RULES + "\n\nReply with one JSON")
    assert proposals[0]["text"] in first["messages"][-1]["content"]
    answers = commission.to_answers(table)
    assert sorted(answers) == ["P1", "P2", "P3"]
    assert answers["P3"] == commission.load_extractions()["P3"]


def test_a_failed_answer_is_a_row_with_a_reason_and_leaves_its_proposal_out_of_the_answers(capsys):
    proposals = data.load_proposals()[:2]
    endpoint = ScriptedEndpoint(responder=_reference_replies(proposals, broken=("P1", "integration")))
    table = commission.extract(proposals, endpoint.client(max_retries=0), "scripted", cache=False,
                               checkpoint=False, request_timeout=60.0)
    failed = table[table["status"] == "failed"]
    assert list(zip(failed["proposal_id"], failed["question"])) == [("P1", "integration")]
    assert failed["error"].iloc[0] and failed["evidence_check"].iloc[0] == "no answer"
    assert not failed["verified"].iloc[0] and failed["facts"].iloc[0] is None
    assert sorted(commission.to_answers(table)) == ["P2"]
    printed = capsys.readouterr().out
    assert "10 rows" in printed and "Evidence: 9 of 9 answers" in printed


def test_extract_refuses_proposals_it_cannot_read():
    client = ScriptedEndpoint().client()
    with pytest.raises(CommissionError, match="no column 'text'"):
        commission.extract(pd.DataFrame({"proposal_id": ["X"], "vendor": ["V"]}), client, "scripted")
    with pytest.raises(CommissionError, match="'P1' appears twice"):
        commission.extract(data.load_proposals()[:1] * 2, client, "scripted")
    with pytest.raises(CommissionError, match="number 1 has no text"):
        commission.extract([{"proposal_id": "X", "vendor": "V", "text": " "}], client, "scripted")
    with pytest.raises(CommissionError, match="no question called"):
        commission.extract(data.load_proposals()[:1], client, "scripted", questions=["price"])


def test_score_applies_the_rules_to_every_proposal_and_explains_bad_rules():
    extractions = commission.load_extractions()
    card = commission.score(extractions, simple_rules)
    assert list(card.columns) == list(commission.SCORECARD_COLUMNS) and len(card) == 30
    p1 = dict(zip(card.loc[card["proposal_id"] == "P1", "question"], card.loc[card["proposal_id"] == "P1", "score"]))
    assert p1 == simple_rules(extractions["P1"])
    as_data = {pid: answers.model_dump() for pid, answers in extractions.items()}  # as they cross the wire
    assert commission.score(as_data, simple_rules).equals(card)
    cases = [(lambda a: [2] * 5, "not a dictionary"), (lambda a: {"training_data": 2}, "no score for monitoring"),
             (lambda a: {q: 3 for q in commission.QUESTION_IDS}, "not a score of 0, 1 or 2"),
             (lambda a: {q: True for q in commission.QUESTION_IDS}, "not a score of 0, 1 or 2")]
    for rules, message in cases:
        with pytest.raises(CommissionError, match=message):
            commission.score(extractions, rules)
    with pytest.raises(CommissionError, match="not a function"):
        commission.score(extractions, {"training_data": 2})
    with pytest.raises(CommissionError, match="do not fit the scorecard"):
        commission.score({"P1": {"training_data": {}}}, simple_rules)


def test_compare_counts_agreement_on_all_items_and_on_clear_cut_items():
    expert = data.load("scorecard")
    mine = expert[["proposal_id", "question", "score"]].copy()
    flip_clear = (mine["proposal_id"] == "P1") & (mine["question"] == "monitoring")   # expert 2
    flip_partial = (mine["proposal_id"] == "P6") & (mine["question"] == "monitoring")  # expert 1
    mine.loc[flip_clear, "score"] = 1
    mine.loc[flip_partial, "score"] = 2
    compared = commission.compare(mine, expert)
    clear = expert["score"].isin([0, 2])
    assert compared.all_items.items == 30 and compared.all_items.agreement == pytest.approx(28 / 30)
    assert compared.clear_cut.items == int(clear.sum())
    assert compared.clear_cut.agreement == pytest.approx((clear.sum() - 1) / clear.sum())
    clear_scores = expert.loc[clear, "score"]
    best_constant = max((clear_scores == 2).mean(), clear_scores.value_counts().max() / clear.sum())
    assert compared.clear_cut.baseline == pytest.approx(best_constant)
    assert compared.clear_cut.kappa == pytest.approx(cohen_kappa_score(clear_scores, mine.loc[clear, "score"]))
    assert 0 < compared.clear_cut.kappa < 1
    assert compared.disagreements[["proposal_id", "clear_cut"]].values.tolist() == [["P1", True], ["P6", False]]
    assert "Clear-cut items (expert 0 or 2): 21 items, agreement 95%" in str(compared)
    with pytest.raises(CommissionError, match="no score for P2 / training_data"):
        commission.compare(mine[mine["proposal_id"] != "P2"], expert)
    with pytest.raises(CommissionError, match="twice"):
        commission.compare(pd.concat([mine, mine.head(1)]), expert)
    with pytest.raises(CommissionError, match="P1 / training_data the score 'high', not 0, 1 or 2"):
        commission.compare(mine.assign(score=["high"] + list(mine["score"][1:])), expert)


def test_topics_covered_finds_each_question_s_topic():
    covered = commission.topics_covered(["How fresh is the training data?", "Who owns retraining?",
                                         "Which rates do you monitor weekly?", ""])
    assert covered["training_data"] == ["How fresh is the training data?"]
    assert covered["retraining_owner"] == ["Who owns retraining?"]
    assert covered["integration"] == [] and covered["production_references"] == []


def _rules_file(tmp_path: Path, body: str) -> object:
    path = tmp_path / "my_rules_source.py"
    path.write_text(body)
    namespace: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return namespace["my_rules"]


def test_saved_rules_score_the_same_in_a_clean_process(tmp_path: Path, fresh_home: Path):
    rules = _rules_file(tmp_path, "from marketlab.commission import FREQUENT\n\n\ndef my_rules(a):\n"
                                  "    fresh = 2 if a.training_data.refresh in FREQUENT else 0\n"
                                  "    return {q: fresh for q in ('training_data', 'monitoring', 'retraining_owner',"
                                  " 'integration', 'production_references')}\n")
    work = tmp_path / "work"
    paths = commission.save_rules(rules, here=work)
    assert paths[0] == work / commission.RULES_FILE
    script = ("import json, scoring_rules\nfrom marketlab import commission\n"
              "card = scoring_rules.scorecard(commission.load_extractions())\n"
              "print(json.dumps(card.to_dict('records')))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=work, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == commission.score(commission.load_extractions(), rules).to_dict("records")
    needs_notebook = _rules_file(tmp_path, "def my_rules(a):\n    return NOTEBOOK_ONLY\n")
    with pytest.raises(ArtifactError, match="NOTEBOOK_ONLY"):
        commission.save_rules(needs_notebook, here=work)


@pytest.mark.slow
def test_the_built_in_model_as_extractor_returns_checked_rows_whatever_it_writes(local_base_url, fresh_home):
    proposal = data.load_proposals()[2]
    table = commission.extract([proposal], llm.client(), llm.model_name(), questions=["monitoring"],
                               max_tokens=80, repair=False, request_timeout=240, show_summary=False)
    assert len(table) == 1 and table["status"].iloc[0] in STATUSES
    row = table.iloc[0]
    if row["status"] in ("ok", "repaired"):
        # Whatever the small model quoted, the verdict is the quote check's on the proposal's own text.
        assert row["evidence_check"] == verify_quote(row["evidence"], proposal["text"]).status
        assert row["verified"] == verify_quote(row["evidence"], proposal["text"]).verified
        assert set(row["facts"]) == set(commission.Monitoring.model_fields) - {"answer", "evidence"}
    else:
        assert row["error"] and not row["verified"]
