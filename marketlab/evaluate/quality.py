"""How good each check is: recall and precision against people's defect labels.

    results = run_checks(rated, products)
    check_quality(results, rated)       # one row per defect kind: recall, precision, counts
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from sklearn.metrics import precision_score, recall_score

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
