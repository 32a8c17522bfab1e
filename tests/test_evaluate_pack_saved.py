"""A faithfulness check built on a company's own vocabulary pack keeps that pack when it is saved to evaluate.py
(Lab 3's save cell, the capstone's package): it used to be written back as faithfulness(), the outdoor pack."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

from marketlab import data, evaluate
from marketlab.evaluate.artifact import evaluator_source

PACK = """\
name: my_skincare
description: The claim words our skincare copy uses.
features:
  - name: vegan
    claim: 'vegan'
    evidence: 'vegan'
  - name: hypoallergenic
    claim: 'hypoallergenic'
    evidence: 'hypoallergenic'
synonyms:
  - [hyaluronic acid, sodium hyaluronate]
"""


def _import(path: Path):
    spec = importlib.util.spec_from_file_location(f"saved_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_a_pack_from_a_file_travels_inside_the_saved_evaluator(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "my_skincare.yaml").write_text(PACK, encoding="utf-8")
    monkeypatch.chdir(tmp_path / "work")
    check = evaluate.faithfulness(vocabulary="my_skincare.yaml")
    saved = tmp_path / "evaluate.py"
    saved.write_text(evaluator_source([check], {}, evaluate.Acceptance(min_pass_rate=0.8)), encoding="utf-8")
    (tmp_path / "work" / "my_skincare.yaml").unlink()  # the file is not needed where evaluate.py runs
    monkeypatch.chdir(tmp_path)
    module = _import(saved)
    shop = data.datasets_dir() / "shops" / "skincare"
    texts = pd.read_csv(shop / "texts.csv", keep_default_na=False).set_index("output_id")
    products = pd.read_csv(shop / "products.csv", keep_default_na=False)
    table = module.evaluate(texts.loc[["SK-05-c", "SK-07-c", "SK-01-a"]].reset_index(), products)
    reasons = dict(zip(table["output_id"], table["reason"]))
    assert '"vegan" — not in the product facts' in reasons["SK-05-c"]
    assert '"hypoallergenic" — not in the product facts' in reasons["SK-07-c"]
    assert table.set_index("output_id").loc["SK-01-a", "faithfulness"]  # "Vegan: yes" backs it
    assert [p.name for p in module.CHECKS[0].packs] == ["my_skincare"]


def test_shipped_packs_are_saved_by_name_and_no_pack_as_none() -> None:
    acceptance = evaluate.Acceptance(min_pass_rate=0.8)
    assert "    faithfulness(),\n" in evaluator_source([evaluate.faithfulness()], {}, acceptance)
    assert "faithfulness(vocabulary=None)" in evaluator_source([evaluate.faithfulness(vocabulary=None)], {},
                                                               acceptance)
