"""The recorded run of Lab 2's workflow on the built-in model, which Lab 3 checks for faithfulness.

These tests read files only (no model calls): the recording is labelled (model, backend, settings),
covers every category of the catalogue in catalogue order, and what the faithfulness check finds in
it is what Lab 3 shows. The hand check of a sample (recall and precision of the check on real model
output) is not recorded yet: see datasets/recorded/README.md.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from marketlab import data
from marketlab.llm.config import LOCAL_MODEL

REPO = Path(__file__).resolve().parent.parent
RUN = REPO / "datasets" / "recorded" / "lab02_workflow_run.csv"
MIN_PRODUCTS = 80
USABLE = ("ok", "repaired")


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
    assert len(run) >= MIN_PRODUCTS
    assert list(run["sku"]) == list(catalogue["sku"][: len(run)]), "the first products of the catalogue, in order"
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
