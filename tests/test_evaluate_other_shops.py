"""The faithfulness check beside people's claim labels on other shops' copy (datasets/shops): what it catches,
what it misses inside a caught text, and what it could not check."""

from __future__ import annotations

import pandas as pd
import pytest

from marketlab import data, evaluate
from marketlab.evaluate import EvaluateInputError

SHOPS = data.datasets_dir() / "shops"


def _shop(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = SHOPS / name
    return (pd.read_csv(folder / "texts.csv", keep_default_na=False),
            pd.read_csv(folder / "products.csv", keep_default_na=False))



def test_other_shops_show_caught_missed_and_unchecked_texts() -> None:
    texts, products = _shop("kitchen")
    kitchen = evaluate.against_claim_labels(texts, products, evaluate.faithfulness()).set_index("output_id")
    assert kitchen.loc["KT-05-b", "what_happened"] == "unchecked" and kitchen.loc["KT-05-b", "outcome"] == "unchecked"
    assert kitchen.loc["KT-01-b", "what_happened"] == "caught" and kitchen.loc["KT-01-b", "missed"] == ""
    assert kitchen.loc["KT-01-a", "what_happened"] == "rightly passed"
    texts, products = _shop("skincare")
    skincare = evaluate.against_claim_labels(texts, products, evaluate.faithfulness()).set_index("output_id")
    # flagged for "Fragrance-free", while "hypoallergenic" goes through unseen
    assert skincare.loc["SK-07-c", "what_happened"] == "caught" and skincare.loc["SK-07-c", "missed"] == "hypoallergenic"


def test_a_labelled_text_the_check_passes_is_missed_and_an_unlabelled_flag_is_a_false_alarm() -> None:
    _, products = _shop("skincare")
    texts = pd.DataFrame({"output_id": ["x", "y"], "sku": ["SK-01", "SK-01"], "channel": ["web", "web"],
                          "text": ["Vegan and fragrance-free, with a 30 ml bottle that feels like silk.",
                                   "Vegan and fragrance-free, in a 30 ml bottle with SPF 15."],
                          "unsupported_claims": ["feels like silk", ""]})
    table = evaluate.against_claim_labels(texts, products, evaluate.faithfulness())
    assert table["what_happened"].tolist() == ["missed", "false alarm"]
    assert table.loc[0, "missed"] == "feels like silk" and "SPF" in table.loc[1, "check_flagged"]


def test_against_claim_labels_refuses_what_it_cannot_compare() -> None:
    texts, products = _shop("kitchen")
    with pytest.raises(EvaluateInputError, match="unsupported_claims"):
        evaluate.against_claim_labels(texts.drop(columns="unsupported_claims"), products, evaluate.faithfulness())
    with pytest.raises(EvaluateInputError, match="not in products"):
        evaluate.against_claim_labels(texts, products.iloc[1:], evaluate.faithfulness())
    with pytest.raises(EvaluateInputError, match="claim check"):
        evaluate.against_claim_labels(texts, products, evaluate.length())
