"""Your scorecard against the expert's: agreement and Cohen's kappa on every item and on the clear-cut ones.

Clear-cut items are those the expert scored 0 (not answered) or 2 (specific and checkable): rules
should get those right. On the 1s (partly answered) reasonable people, and rules, differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from .errors import CommissionError
from .scoring import SCORECARD_COLUMNS

CLEAR_CUT = (0, 2)


@dataclass(frozen=True)
class Agreement:
    """How far two sets of scores agree: share of equal scores, Cohen's kappa, and the best do-nothing baseline."""

    items: int
    agreement: float
    kappa: float
    baseline: float  # the better of always giving 2 and always giving the expert's most common score

    def line(self, label: str) -> str:
        """One printable line."""
        return (f"{label}: {self.items} items, agreement {self.agreement:.0%}, kappa {self.kappa:.2f} "
                f"(giving every item the same score would agree at best {self.baseline:.0%})")


def agreement(predicted: list[Any], human: list[Any]) -> Agreement:
    """Agreement, Cohen's kappa and the best baseline, from marketlab.evaluate's calibrate (a 2 counts as a pass)."""
    from marketlab.evaluate.calibrate import calibrate

    if not human:
        return Agreement(0, float("nan"), float("nan"), float("nan"))
    labels = {*predicted, *human}
    measured = calibrate(list(predicted), list(human), positive=2 if 2 in labels else max(labels))
    baseline = max(b.agreement for b in measured.baselines.values())
    return Agreement(measured.n, float(measured.agreement), float(measured.kappa), float(baseline))


@dataclass(frozen=True)
class Comparison:
    """Item by item, your score beside the expert's, with agreement on all items and on clear-cut ones."""

    table: pd.DataFrame
    all_items: Agreement
    clear_cut: Agreement

    @property
    def disagreements(self) -> pd.DataFrame:
        """The items where your score and the expert's differ, clear-cut ones first."""
        rows = self.table[~self.table["agree"]]
        return rows.sort_values(["clear_cut", "proposal_id"], ascending=[False, True]).reset_index(drop=True)

    def __str__(self) -> str:
        return "\n".join([self.all_items.line("All items"), self.clear_cut.line("Clear-cut items (expert 0 or 2)")])

    def show(self) -> None:
        """Print the two agreement lines."""
        print(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def _scorecard(frame: Any, what: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise CommissionError(f"{what} is a {type(frame).__name__}, not a table.",
                              "Pass the table commission.score returned (or data.load('scorecard')).")
    missing = [c for c in SCORECARD_COLUMNS if c not in frame.columns]
    if missing:
        raise CommissionError(f"{what} has no column {', '.join(map(repr, missing))}.",
                              f"A scorecard has the columns {', '.join(SCORECARD_COLUMNS)}.")
    scores = pd.to_numeric(frame["score"], errors="coerce")
    odd = ~scores.isin([0, 1, 2])
    if odd.any():
        row = frame[odd].iloc[0]
        raise CommissionError(f"{what} gives {row['proposal_id']} / {row['question']} the score {row['score']!r}, "
                              "not 0, 1 or 2.", "Each score is the whole number 0, 1 or 2.")
    twice = frame.duplicated(["proposal_id", "question"])
    if twice.any():
        row = frame[twice].iloc[0]
        raise CommissionError(f"{what} scores {row['proposal_id']} / {row['question']} twice.",
                              "Keep one score per proposal and question.")
    return frame.assign(score=scores.astype(int))


def compare(scorecard: pd.DataFrame, expert: pd.DataFrame) -> Comparison:
    """Compare a scorecard with the expert's (e.g. data.load('scorecard')), item by item."""
    mine = _scorecard(scorecard, "Your scorecard")[list(SCORECARD_COLUMNS)]
    theirs = _scorecard(expert, "The expert scorecard")
    keep = [c for c in ("proposal_id", "vendor", "question", "score", "justification") if c in theirs.columns]
    both = theirs[keep].rename(columns={"score": "expert"}).merge(
        mine.rename(columns={"score": "yours"}), on=["proposal_id", "question"], how="left")
    absent = both[both["yours"].isna()]
    if not absent.empty:
        row = absent.iloc[0]
        raise CommissionError(f"Your scorecard has no score for {row['proposal_id']} / {row['question']} "
                              f"({len(absent)} item(s) missing).",
                              "Score every proposal the expert scored, with every question.")
    both["yours"] = both["yours"].astype(int)
    both["expert"] = both["expert"].astype(int)
    both["agree"] = both["yours"] == both["expert"]
    both["clear_cut"] = both["expert"].isin(CLEAR_CUT)
    columns = [c for c in ("proposal_id", "vendor", "question", "yours", "expert", "agree", "clear_cut",
                           "justification") if c in both.columns]
    table = both[columns]
    clear = table[table["clear_cut"]]
    return Comparison(table, agreement(table["yours"].tolist(), table["expert"].tolist()),
                      agreement(clear["yours"].tolist(), clear["expert"].tolist()))
