"""The recorded run of Lab 2's workflow on the built-in model, which Lab 3 checks for faithfulness, and a
person's hand check of a sample of it.

These tests read files only (no model calls): the recording is labelled (model, backend, settings),
covers the whole catalogue in catalogue order, and what the faithfulness check finds in it is what
Lab 3 shows. The check's recall and precision on real model output are recomputed from the run and
the hand check, so they fail when the check gets worse, when the run is recorded again without
checking the sample again, or when a hand label no longer quotes the text.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from marketlab import data
from marketlab.evaluate.facts import Claim, claims
from marketlab.llm.config import LOCAL_MODEL

REPO = Path(__file__).resolve().parent.parent
RUN = REPO / "datasets" / "recorded" / "lab02_workflow_run.csv"
HAND = REPO / "datasets" / "recorded" / "lab02_faithfulness_handcheck.csv"
USABLE = ("ok", "repaired")
MIN_SAMPLE = 30
MIN_RECALL = 0.9
MIN_PRECISION = 0.8


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("record_lab02_run", REPO / "scripts" / "record_lab02_run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("record_lab02_run", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run() -> pd.DataFrame:
    assert RUN.exists(), f"{RUN} is missing: run .venv/bin/python scripts/record_lab02_run.py"
    return pd.read_csv(RUN, keep_default_na=False)


def test_run_is_a_labelled_recording_of_the_catalogue_in_order(run: pd.DataFrame) -> None:
    assert list(run.columns) == _script().COLUMNS
    assert set(run["source"]) == {"recorded"}
    assert set(run["model"]) == {LOCAL_MODEL} and set(run["backend"]) == {"local"}
    assert set(run["temperature"].astype(float)) == {0.0} and set(run["max_tokens"].astype(int)) == {300}
    catalogue = data.load("products")
    assert list(run["sku"]) == list(catalogue["sku"]), "every product of the catalogue, in order"
    categories = catalogue.set_index("sku").loc[run["sku"], "category"]
    assert set(categories) == set(catalogue["category"]), "every category is in the recording"
    usable = run["status"].isin(USABLE)
    assert (run.loc[usable, "description"].str.strip() != "").all()


def test_the_checks_find_inventions_in_replies_the_runner_called_ok(run: pd.DataFrame) -> None:
    """What Lab 3 shows: replies with the right shape that still claim what the facts do not say."""
    from marketlab.evaluate import faithfulness, run_checks

    usable = run[run["status"].isin(USABLE)]
    checked = run_checks(usable.rename(columns={"description": "text"}), data.load("products"), [faithfulness()])
    assert (~checked["faithfulness"]).sum() >= 5, "the built-in model invents claims the check catches"
    assert checked.loc[~checked["faithfulness"], "reason"].str.len().gt(0).all(), "every flag quotes its claim"


# -- the hand check of a sample -------------------------------------------------------------------
@pytest.fixture(scope="module")
def hand() -> pd.DataFrame:
    assert HAND.exists(), f"{HAND} is missing: hand-check the sample (datasets/recorded/README.md)"
    table = pd.read_csv(HAND, keep_default_na=False)
    assert list(table.columns) == ["sku", "claim", "supported", "note"]
    assert set(table["supported"].astype(str)) <= {"True", "False"}
    return table.assign(supported=table["supported"].astype(str) == "True")


def _spans(text: str, words: str) -> list[tuple[int, int]]:
    out, at = [], text.find(words)
    while at >= 0:
        out.append((at, at + len(words)))
        at = text.find(words, at + 1)
    return out


def _overlaps(claim: Claim, spans: list[tuple[int, int]]) -> bool:
    return any(claim.start < end and start < claim.end for start, end in spans)


@pytest.fixture(scope="module")
def measured(run: pd.DataFrame, hand: pd.DataFrame) -> dict[str, int]:
    """The faithfulness check against the hand labels: a labelled unsupported claim is caught when the
    check flags words that overlap it; every claim the check flags must be labelled, supported or not."""
    products = data.load("products").set_index("sku", drop=False)
    texts = run.set_index("sku")["description"]
    labelled = caught = flagged = flagged_right = 0
    for sku, labels in hand.groupby("sku", sort=False):
        text = texts.loc[sku]
        found = [c for c in claims(text, products.loc[sku].to_dict()) if not c.supported]
        wrong, fine = [], []
        for _, label in labels[labels["claim"] != ""].iterrows():
            spans = _spans(text, label["claim"])
            assert spans, f"{sku}: the hand label {label['claim']!r} does not quote the description"
            (fine if label["supported"] else wrong).append(spans)
        labelled += len(wrong)
        caught += sum(any(_overlaps(c, spans) for c in found) for spans in wrong)
        for claim in found:
            right = any(_overlaps(claim, spans) for spans in wrong)
            assert right or any(_overlaps(claim, spans) for spans in fine), \
                f"{sku}: the check flags {claim.text!r}, which the hand check does not mention: label it"
            flagged += 1
            flagged_right += right
    return {"labelled": labelled, "caught": caught, "flagged": flagged, "flagged_right": flagged_right}


def test_sample_is_every_third_product_with_a_description(run: pd.DataFrame, hand: pd.DataFrame) -> None:
    order = data.load("products")["sku"].tolist()
    usable = set(run.loc[run["status"].isin(USABLE), "sku"])
    expected = [sku for sku in order[::3] if sku in usable]
    assert list(dict.fromkeys(hand["sku"])) == expected
    assert len(expected) >= MIN_SAMPLE


def test_faithfulness_recall_on_the_hand_checked_sample(measured: dict[str, int]) -> None:
    assert measured["labelled"] >= MIN_SAMPLE, "the sample holds enough unsupported claims to measure recall"
    recall = measured["caught"] / measured["labelled"]
    assert recall >= MIN_RECALL, f"recall {recall:.2f} ({measured})"


def test_faithfulness_precision_on_the_hand_checked_sample(measured: dict[str, int]) -> None:
    precision = measured["flagged_right"] / measured["flagged"]
    assert precision >= MIN_PRECISION, f"precision {precision:.2f} ({measured})"
