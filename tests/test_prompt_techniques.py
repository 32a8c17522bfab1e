"""Issue 26 item 7: Lab 4's optional part measures prompt techniques with Lab 3's checks on the course's
data, and shows a recorded comparison labelled as what it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from marketlab import data, reference
from marketlab.brief import techniques
from marketlab.llm.config import LOCAL_MODEL
from tests.support.lab_notebook import meta, notebook

LAB = Path(__file__).resolve().parent.parent / "labs" / "04-monitor"
SECTION = ["techniques-intro", "techniques-run", "techniques-summary", "techniques-recorded-intro",
           "techniques-recorded", "techniques-read"]


def test_each_technique_adds_what_it_says_and_nothing_else() -> None:
    products, brief = data.load("products"), reference.load_brief()
    record = products.iloc[0]
    base = brief.to_messages(record)
    sent = {t: techniques.messages(t, brief, record, products) for t in techniques.TECHNIQUES}
    words = techniques.load_techniques()
    assert sent["baseline"] == base
    assert sent["role"][0]["content"].startswith(words["role"]["text"]) and sent["role"][1:] == base[1:]
    for technique in ("structure", "reasoning"):
        assert sent[technique][-1]["content"].endswith(words[technique]["text"])
        assert sent[technique][:-1] == base[:-1]
    shown = sent["examples"][1:-1]
    assert [m["role"] for m in shown] == ["user", "assistant"] * 2, "two examples, each after its product's facts"
    assert record["name"] not in " ".join(m["content"] for m in shown), "never the product's own copy"


def test_reasoning_first_scores_only_the_copy_after_its_marker() -> None:
    reply = "Facts I will use:\n- 45 litres\nDescription: A 45-litre pack for long days."
    assert techniques.final_copy(reply, "reasoning") == "A 45-litre pack for long days."
    assert techniques.final_copy("No marker here.", "reasoning") == "No marker here."
    assert techniques.final_copy(reply, "role") == reply


def test_the_comparison_scores_every_reply_with_lab_3s_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    from marketlab.llm.testing import ScriptedEndpoint

    products = data.load("products")
    table = techniques.compare(products.head(2), ScriptedEndpoint().client(), "scripted")
    assert len(table) == 2 * len(techniques.TECHNIQUES)
    assert {"length", "faithfulness", "required_facts", "banned_words"} <= set(table.attrs["checks"])
    summary = techniques.summary(table)
    assert list(summary.index) == list(techniques.TECHNIQUES) and (summary["replies"] == 2).all()


def test_the_recorded_comparison_is_labelled_and_is_what_the_lab_says() -> None:
    recorded = techniques.recorded()
    assert (recorded["source"] == "recorded").all()
    assert recorded[["model", "backend", "recorded_on"]].notna().all().all()
    assert set(recorded["model"]) == {LOCAL_MODEL} and set(recorded["backend"]) == {"local"}
    summary = techniques.summary(recorded)
    assert list(summary.index) == list(techniques.TECHNIQUES) and (summary["replies"] == 6).all()
    said = " ".join(c.source for c in notebook(LAB).cells if c.id in SECTION)
    assert "six products (thirty replies)" in said and "not a capable one" in said.replace("**", "")
    follow = techniques.followed(recorded)  # the lab: "never wrote the labelled parts or the Description: line"
    assert follow.loc["structure", "in the asked format"] == 0 and follow.loc["reasoning", "in the asked format"] == 0
    assert round(recorded["seconds"].min()) == 3 and round(recorded["seconds"].max()) == 137, "the stated times"
    assert "3 to 137 seconds" in said
    readme = (Path(data.datasets_dir()) / "recorded" / "README.md").read_text()
    cut_off, passed = int((recorded["finish_reason"] == "length").sum()), int((recorded["outcome"] == "passed").sum())
    assert f"{cut_off} of 30 replies were cut off" in readme and passed == 0, "what the README says it measured"
    again = techniques.score(recorded[["sku", "technique", "channel", "text"]].copy(), data.load("products"))
    for check in summary.columns.drop(["replies", "every check"]):
        assert (again[check].to_numpy() == recorded[check].to_numpy()).all(), f"{check}: scores are the checks'"


def test_the_optional_part_is_ungraded_and_runs_on_the_scripted_model(monkeypatch: pytest.MonkeyPatch,
                                                                     fresh_home: Path) -> None:
    monkeypatch.setenv("MARKETLAB_BACKEND", "scripted")
    cells = {meta(c)["grade_id"]: c for c in notebook(LAB).cells}
    assert all(not meta(cells[i])["grade"] and meta(cells[i])["locked"] for i in SECTION)
    namespace: dict = {}
    exec(cells["setup"].source, namespace)
    for grade_id in SECTION:
        if cells[grade_id].cell_type == "code":
            exec(cells[grade_id].source, namespace)
    assert len(namespace["tried"]) == 10
