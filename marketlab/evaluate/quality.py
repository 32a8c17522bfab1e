"""How good each check is: recall and precision against people's defect labels.

    results = run_checks(rated, products)
    check_quality(results, rated)       # one row per defect kind: recall, precision, counts

    shop = against_claim_labels(texts, products, faithfulness())   # per text: caught, missed, unchecked
    shop["what_happened"].value_counts()
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from .errors import EvaluateInputError
from .suite import DEFECT_CHECKS

COLUMNS = ["defect", "check", "n", "labelled", "flagged", "true_pos", "false_pos", "false_neg", "unchecked", "recall",
           "precision"]


def _as_bool(column: pd.Series, what: str) -> pd.Series:
    if column.dtype == bool:
        return column
    text = column.astype(str).str.strip().str.lower()
    known = text.isin(["true", "false", "1", "0"])
    if not known.all():
        row = int((~known).to_numpy().argmax())
        raise EvaluateInputError(f"{what} has {column.iloc[row]!r} in row {row + 1}, not True or False.",
                                 "Give every row True or False in that column.")
    return text.isin(["true", "1"])


def _unchecked(results: pd.DataFrame, check: str):  # -> np.ndarray of bool
    """Which rows the check could not check (run_checks' `unchecked` column names it); none without the column."""
    if "unchecked" not in results.columns:
        return pd.Series(False, index=results.index).to_numpy()
    return results["unchecked"].map(lambda cell: isinstance(cell, str) and check in
                                    [n.strip() for n in cell.split(",")]).to_numpy(dtype=bool)


def check_quality(results: pd.DataFrame, labels: pd.DataFrame,
                  mapping: Mapping[str, str] = DEFECT_CHECKS) -> pd.DataFrame:
    """Recall and precision of each check against the labels: a check flags a row when its column is False and it
    did check the text. A row the check could not check (named in results' `unchecked` column) is not a flag: it
    is counted apart, in `unchecked`, and a labelled defect there is a miss."""
    for table, what in ((results, "results"), (labels, "labels")):
        if not isinstance(table, pd.DataFrame):
            raise EvaluateInputError(f"{what} is a {type(table).__name__}, not a table.",
                                     "Pass run_checks(...)'s result and the rated outputs table.")
    if len(results) != len(labels):
        raise EvaluateInputError(f"results has {len(results)} rows and labels has {len(labels)}.",
                                 "Run the checks on the labelled table itself, so the rows line up.")
    if "output_id" in results.columns and "output_id" in labels.columns \
            and results["output_id"].tolist() != labels["output_id"].tolist():
        raise EvaluateInputError("results and labels list different texts (output_id differs).",
                                 "Run the checks on the labelled table itself, in the same order.")
    from sklearn.metrics import precision_score, recall_score  # scikit-learn is slow to import: only when used

    rows = []
    for defect, check in mapping.items():
        if defect not in labels.columns:
            raise EvaluateInputError(f"The labels have no '{defect}' column.",
                                     f"Label columns are {list(labels.columns)}; pass mapping= with the ones you have.")
        if check not in results.columns:
            raise EvaluateInputError(f"The results have no column for the check '{check}'.",
                                     f"Run that check, or pass mapping= with the checks you ran: "
                                     f"{[c for c in results.columns if results[c].dtype == bool]}.")
        truth = _as_bool(labels[defect], f"The label column '{defect}'").to_numpy()
        could_not = _unchecked(results, check)
        flagged = ~_as_bool(results[check], f"The check column '{check}'").to_numpy() & ~could_not
        tp, fp, fn = int((truth & flagged).sum()), int((~truth & flagged).sum()), int((truth & ~flagged).sum())
        rows.append({"defect": defect, "check": check, "n": len(truth), "labelled": int(truth.sum()),
                     "flagged": int(flagged.sum()), "true_pos": tp, "false_pos": fp, "false_neg": fn,
                     "unchecked": int(could_not.sum()),
                     "recall": float(recall_score(truth, flagged, zero_division=0)),
                     "precision": float(precision_score(truth, flagged, zero_division=0))})
    return pd.DataFrame(rows, columns=COLUMNS)


WHAT_HAPPENED = ("caught", "missed", "unchecked", "false alarm", "rightly passed")
CLAIM_COLUMNS = ["output_id", "sku", "text", "outcome", "what_happened", "people_found", "check_flagged", "missed"]


def _labelled(cell: Any) -> list[str]:
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return []
    return [part.strip() for part in str(cell).split("|") if part.strip()]


def _spans(text: str, phrase: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(re.escape(phrase.lower()), text.lower())]


def against_claim_labels(texts: pd.DataFrame, products: pd.DataFrame, check: Any,
                         labels: str = "unsupported_claims") -> pd.DataFrame:
    """A claim check (such as faithfulness()) beside people's labels, text by text.

    `texts` has sku, text and `labels`: the unsupported claims people found, as words from the text
    separated by "|" (empty when there are none), as in datasets/shops/*/texts.csv. One row per text:
    the check's outcome (passed, failed, unchecked), what happened against the labels (caught: people
    found a claim and the check failed the text; missed: people found one and the check passed it;
    unchecked: the check recognised no claim at all; false alarm; rightly passed), the claims people
    found, the ones the check flagged, and the labelled claims it did not flag (even in a caught text).
    """
    for table, what in ((texts, "texts"), (products, "products")):
        if not isinstance(table, pd.DataFrame):
            raise EvaluateInputError(f"{what} is a {type(table).__name__}, not a table.",
                                     "Pass the texts table and the products table, e.g. read with pd.read_csv.")
    needed = [c for c in ("sku", "text", labels) if c not in texts.columns]
    if needed:
        raise EvaluateInputError(f"texts has no {', '.join(repr(c) for c in needed)} column.",
                                 f"Give each text its sku, its text and the claims people found in '{labels}'.")
    if "sku" not in products.columns:
        raise EvaluateInputError("products has no 'sku' column.", "Pass a table in the products schema.")
    if not callable(check) or not hasattr(check, "claims"):
        raise EvaluateInputError(f"check is a {type(check).__name__}, not a claim check.",
                                 "Pass a check that lists the claims it found, such as faithfulness().")
    facts = {str(row["sku"]): row for row in products.to_dict("records")}
    rows = []
    for number, row in enumerate(texts.to_dict("records"), start=1):
        sku, text = str(row["sku"]), str(row["text"])
        if sku not in facts:
            raise EvaluateInputError(f"Text {number} is about sku {sku!r}, which is not in products.",
                                     "Pass the products table of the same shop as the texts.")
        product = facts[sku]
        finding = check(text, product, str(row.get("channel", "web")))
        flagged = [c for c in check.claims(text, product) if not c.supported]
        found = _labelled(row[labels])
        missed = [label for label in found
                  if not any(c.start < end and start < c.end for c in flagged for start, end in _spans(text, label))]
        if finding.unchecked:
            happened = "unchecked"
        elif found:
            happened = "missed" if finding.passed else "caught"
        else:
            happened = "rightly passed" if finding.passed else "false alarm"
        rows.append({"output_id": row.get("output_id", number), "sku": sku, "text": text,
                     "outcome": finding.outcome, "what_happened": happened, "people_found": " | ".join(found),
                     "check_flagged": " | ".join(dict.fromkeys(c.text for c in flagged)),
                     "missed": " | ".join(missed)})
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)
