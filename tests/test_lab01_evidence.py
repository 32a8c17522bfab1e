"""Lab 1's evidence: the recorded comparison is real and large enough, and the lab says what it shows.

These tests read files only (no model calls). They fail when the recorded table is too small, was
edited by hand, or was recorded again with different results while the notebook still tells the
old story.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import nbformat
import pandas as pd
import pytest

from marketlab import data, reference
from marketlab.llm.config import LOCAL_MODEL

REPO = Path(__file__).resolve().parent.parent
TABLE = REPO / "datasets" / "recorded" / "lab01_brief_comparison.csv"
LAB = REPO / "labs" / "01-brief" / "01-brief.ipynb"
BRIEFS = ("one-line", "engineered")
MIN_PRODUCTS = 20

# The "Measured, not assumed" bullets of Lab 1: the label that starts a bullet, and the table column it counts.
CLAIMS = {
    "Within the word limits": "within_word_limits",
    "Named the product and its headline spec": "names_product_and_first_spec",
    "Used a banned word": "has_banned_word",
    "Broke one of the product's limits": "breaks_a_limit",
    "Contained an invented number": "has_invented_number",
    "Cut off at 300 tokens": "cut_off",
}
# Invented or contradicted claims: the bullet must also say in which direction the better brief moved them.
INVENTED = ("breaks_a_limit", "has_invented_number")


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("record_replies", REPO / "scripts" / "record_replies.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("record_replies", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    assert TABLE.exists(), f"{TABLE} is missing: run .venv/bin/python scripts/record_replies.py"
    return pd.read_csv(TABLE, keep_default_na=False)


@pytest.fixture(scope="module")
def lab() -> dict[str, str]:
    nb = nbformat.read(LAB, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells if "nbgrader" in c.metadata}


def _count(table: pd.DataFrame, brief: str, column: str) -> int:
    return int(table.loc[table["brief"] == brief, column].astype(str).eq("True").sum())


def _bullet(text: str, label: str) -> str:
    found = re.search(rf"^- \*\*{re.escape(label)}:\*\*(.+?)(?=^- |\Z)", text, re.M | re.S)
    assert found, f"Lab 1's measured-read cell has no bullet starting '- **{label}:**'"
    return " ".join(found.group(1).split())


def test_table_is_a_labelled_recording_of_the_built_in_model(table: pd.DataFrame) -> None:
    assert list(table.columns) == _script().COLUMNS
    assert set(table["source"]) == {"recorded"}
    assert set(table["model"]) == {LOCAL_MODEL} and set(table["backend"]) == {"local"}
    assert set(table["temperature"].astype(float)) == {0.0}
    assert (table["reply"].str.strip() != "").all(), "every reply has text"


def test_table_covers_enough_products_with_both_briefs(table: pd.DataFrame) -> None:
    per_product = table.groupby("sku")["brief"].apply(sorted)
    assert len(per_product) >= MIN_PRODUCTS
    assert all(briefs == sorted(BRIEFS) for briefs in per_product), "each product has one reply per brief"
    assert table["category"].nunique() == len(data.CATEGORIES), "every category is measured"
    assert set(table["sku"]) <= set(data.load("products")["sku"])


def test_replies_had_room_and_are_not_all_cut_off(table: pd.DataFrame) -> None:
    brief = reference.load_brief()
    assert (table["max_tokens"] >= 2 * brief.output.max_words).all(), "room for a reply within the word limit"
    for kind in BRIEFS:
        assert _count(table, kind, "cut_off") < (table["brief"] == kind).sum(), f"every {kind} reply was cut off"


def test_scores_are_what_the_checks_give_for_the_replies(table: pd.DataFrame) -> None:
    script = _script()
    brief = reference.load_brief()
    banned = data.load_brand_voice()["banned_words"]
    products = data.load("products").set_index("sku")
    for _, row in table.iterrows():
        record = products.loc[row["sku"]].to_dict() | {"sku": row["sku"]}
        expected = script.score(row["reply"], record, brief, banned)
        stored = {key: row[key] for key in expected}
        stored = {k: (str(v) == "True" if isinstance(expected[k], bool) else v) for k, v in stored.items()}
        stored["words"] = int(stored["words"])
        assert stored == expected, (f"{row['sku']} ({row['brief']}): the stored scores differ from the checks'; "
                                    "record again with scripts/record_replies.py and update Lab 1's numbers")


def test_lab_states_the_measured_counts(table: pd.DataFrame, lab: dict[str, str]) -> None:
    products = table["sku"].nunique()
    assert f"on {products} products" in lab["measured-intro"]
    text = lab["measured-read"]
    for label, column in CLAIMS.items():
        stated = [tuple(map(int, pair)) for pair in re.findall(r"(\d+) of (\d+)", _bullet(text, label))]
        measured = [(_count(table, kind, column), products) for kind in BRIEFS]
        assert stated[:2] == measured, f"Lab 1 says {label}: {stated[:2]} (one-line, engineered); the table: {measured}"


@pytest.mark.parametrize("column", INVENTED)
def test_lab_states_the_direction_of_invented_claims(table: pd.DataFrame, lab: dict[str, str], column: str) -> None:
    before, after = (_count(table, kind, column) for kind in BRIEFS)
    label = next(label for label, col in CLAIMS.items() if col == column)
    bullet = _bullet(lab["measured-read"], label)
    direction = "more" if after > before else "fewer" if after < before else "as many"
    others = {"more", "fewer", "as many"} - {direction}
    assert re.search(rf"\b{direction}\b", bullet), f"'{label}' must say the engineered brief gave {direction}"
    assert not any(re.search(rf"\b{word}\b", bullet) for word in others), f"'{label}' contradicts the table"


def test_lab_never_credits_the_small_model_with_fewer_invented_claims_than_measured(
        table: pd.DataFrame, lab: dict[str, str]) -> None:
    invented = {kind: sum(_count(table, kind, column) for column in INVENTED) for kind in BRIEFS}
    lesson = lab["measured-lesson"].lower()
    if invented["engineered"] >= invented["one-line"]:
        assert "invents" in lesson and "either brief" in lesson, "the lesson says it invents with either brief"
    assert "measured" in lesson and "specification" in lesson


def test_output_template_carries_both_word_limits(lab: dict[str, str]) -> None:
    template = lab["output"].split("### BEGIN SOLUTION")[0]
    assert re.search(r"^min_words:", template, re.M) and re.search(r"^max_words:", template, re.M)
    assert "min_words" in lab["sec-output"] and "max_words" in lab["sec-output"]


def test_examples_shown_are_flagged_replies_that_make_the_claim(table: pd.DataFrame, lab: dict[str, str]) -> None:
    skus = re.findall(r"RO-\d{4}", lab["measured-examples"])
    assert skus, "the examples cell names the products it shows"
    engineered = table[table["brief"] == "engineered"].set_index("sku")
    for sku in skus:
        row = engineered.loc[sku]
        assert str(row["breaks_a_limit"]) == "True", f"{sku} is shown as breaking a limit but is not flagged"
        claimed = [item.split()[-1] for item in row["broken_limits"].split("; ")]
        assert any(word.lower() in row["reply"][:300].lower() for word in claimed), f"{sku}: claim not in the shown text"
