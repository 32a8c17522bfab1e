"""Calibration: how often a judge (or a check) agrees with people, and whether that beats guessing.

    from marketlab.evaluate.calibrate import calibrate
    result = calibrate(verdicts["judge_pass"], ~rated["wrong_tone"], texts=rated["text"])
    print(result)            # agreement, Cohen's kappa, the two baselines and whether to trust it
    result.confusion         # rows: what people said; columns: what the judge said
    result.disagreements     # the rows to read

`positive` is the label that means "passes" (for a defect column, where True means the defect is
there, pass ``~labels["wrong_tone"]`` or ``positive=False``). The always-pass baseline predicts it
for every row; the majority baseline predicts the label people used most. A judge that cannot beat
both is no better than not judging at all.

Trust also needs evidence enough to decide: at least MIN_ANSWERED rows with both labels (on fewer,
luck alone moves kappa by more than the 0.6 rule can tell apart), and no row the judge failed to
answer (a judge that times out on some texts is not judging those, and the rows it did answer may
be the easy ones). Either problem makes `trust` False, and `why` says which.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import EvaluateInputError

TRUST_KAPPA = 0.6
MIN_ANSWERED = 30  # rows with a judge label and a human label, before trust can be decided


@dataclass(frozen=True)
class Baseline:
    """A trivial predictor that gives the same label to every row, scored like the judge."""

    name: str
    predicts: Any
    agreement: float
    kappa: float


@dataclass
class Calibration:
    """Agreement and Cohen's kappa of a judge against people, beside the always-pass and majority baselines."""

    n: int
    agreement: float
    kappa: float
    baselines: dict[str, Baseline]
    confusion: pd.DataFrame
    disagreements: pd.DataFrame
    trust: bool
    why: str
    positive: Any = True
    excluded: int = 0  # rows left out because the judge or the person gave no label
    notes: list[str] = field(default_factory=list)
    failed: int = 0  # of the excluded rows, those the judge gave no label (it failed or timed out)
    min_answered: int = MIN_ANSWERED

    @property
    def too_few(self) -> bool:
        """True when fewer rows were compared than trust needs."""
        return self.n < self.min_answered

    @property
    def evidence_problems(self) -> list[str]:
        """Why these numbers cannot decide trust (too few rows compared, rows the judge failed), in plain words."""
        problems = []
        if self.failed:
            problems.append(f"{self.failed} of {self.n + self.excluded} rows got no answer from the judge (it failed "
                            "or timed out), so it was not tested on them")
        if self.too_few:
            problems.append(f"only {self.n} rows were compared; deciding trust needs at least {self.min_answered}")
        return problems

    def table(self) -> pd.DataFrame:
        """One row per predictor (the judge, then each baseline): n, agreement and kappa."""
        rows = [{"predictor": "judge", "n": self.n, "agreement": self.agreement, "kappa": self.kappa}]
        rows += [{"predictor": b.name, "n": self.n, "agreement": b.agreement, "kappa": b.kappa}
                 for b in self.baselines.values()]
        return pd.DataFrame(rows)

    def __str__(self) -> str:
        lines = [f"Judge vs people on {self.n} rows: agreement {self.agreement:.0%}, Cohen's kappa {self.kappa:.2f}."]
        lines += [f"  Baseline '{b.name}' (always says {b.predicts!r}): agreement {b.agreement:.0%}, "
                  f"kappa {b.kappa:.2f}." for b in self.baselines.values()]
        lines.append(f"  {'Trust it' if self.trust else 'Do not trust it yet'}: {self.why}")
        lines += [f"  Note: {note}" for note in self.notes]
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def _as_series(values: Any, what: str) -> pd.Series:
    if isinstance(values, pd.DataFrame):
        raise EvaluateInputError(f"{what} is a whole table; calibrate needs one column of labels.",
                                 "Pass one column, e.g. verdicts['judge_pass'] or rated['wrong_tone'].")
    if isinstance(values, pd.Series):
        return values
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray, pd.Index)):
        raise EvaluateInputError(f"{what} is a {type(values).__name__}, not a column of labels.",
                                 "Pass a pandas column or a list with one label per row.")
    return pd.Series(list(values))


def _plain(value: Any) -> Any:
    """numpy scalars as Python values, so True and np.True_ count as one label."""
    return value.item() if isinstance(value, np.generic) else value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "number"
    return "text"


def _kappa(human: list[Any], predicted: list[Any], labels: list[Any]) -> float:
    """Cohen's kappa; 0 when it is undefined (every row has one label on both sides, so no chance correction)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns when kappa is undefined; the caller notes it
        from sklearn.metrics import cohen_kappa_score  # scikit-learn is slow to import: only when used

        value = float(cohen_kappa_score(human, predicted, labels=labels))
    return 0.0 if np.isnan(value) else value


def _aligned(predicted: pd.Series, human: pd.Series) -> tuple[pd.Series, pd.Series]:
    if len(predicted) != len(human):
        raise EvaluateInputError(
            f"predicted has {len(predicted)} labels and human has {len(human)}: they must be the same rows.",
            "Judge the same table the people labelled, or select the same rows from both (e.g. with .loc[ids]).")
    if not predicted.index.equals(human.index):
        if predicted.index.has_duplicates or set(predicted.index) != set(human.index):
            raise EvaluateInputError(
                "predicted and human are not labels of the same rows (their row labels differ).",
                "Keep the table's index on both, or pass both with .reset_index(drop=True) if they are in the "
                "same order.")
        human = human.reindex(predicted.index)
    return predicted, human


def calibrate(predicted: Any, human: Any, *, positive: Any = True, texts: Any = None,
              min_answered: int = MIN_ANSWERED) -> Calibration:
    """Compare a judge's labels with people's: agreement, Cohen's kappa, baselines, confusion, disagreements.

    Works for true/false labels and for category labels. Rows where either side has no label (NA:
    the judge could not answer) are counted, left out and noted; a judge with such rows, or compared on
    fewer than `min_answered` rows, is not trusted. `positive` is the label that means "passes"; the
    always-pass baseline predicts it for every row.
    """
    predicted, human = _aligned(_as_series(predicted, "predicted"), _as_series(human, "human"))
    notes: list[str] = []
    missing_pred, missing_human = predicted.isna(), human.isna()
    keep = ~(missing_pred | missing_human)
    if missing_pred.any():
        notes.append(f"{int(missing_pred.sum())} row(s) have no judge label (the judge could not answer) and are "
                     "left out; read them before trusting the judge on everything.")
    if (missing_human & ~missing_pred).any():
        notes.append(f"{int((missing_human & ~missing_pred).sum())} row(s) have no human label and are left out.")
    if not keep.any():
        raise EvaluateInputError("No row has both a judge label and a human label, so there is nothing to compare.",
                                 "Check that the judge answered (judge_status) and that the labels column is filled.")
    pred = [_plain(v) for v in predicted[keep].tolist()]
    true = [_plain(v) for v in human[keep].tolist()]
    kinds = {_kind(v) for v in pred}, {_kind(v) for v in true}
    if kinds[0] != kinds[1] and "text" in kinds[0] | kinds[1]:
        raise EvaluateInputError(
            f"The judge's labels are {', '.join(sorted(kinds[0]))} but the people's are {', '.join(sorted(kinds[1]))} "
            f"(e.g. {pred[0]!r} and {true[0]!r}), so they can never agree.",
            "Map one side onto the other first, e.g. labels.map({'yes': True, 'no': False}).")
    positive = _plain(positive)
    seen = list(dict.fromkeys(true + pred))
    if kinds[0] | kinds[1] == {"true/false"}:
        seen = list(dict.fromkeys([*seen, True, False]))  # both rows and columns, even if one never occurs
    if positive not in seen:
        raise EvaluateInputError(f"positive={positive!r} is not one of the labels ({', '.join(map(repr, seen))}).",
                                 "Pass positive= the label that means 'passes', e.g. positive=True or "
                                 "positive='on tone'.")
    labels = [positive, *sorted((v for v in seen if v != positive), key=str)]
    n = len(true)
    agreement = float(np.mean([p == t for p, t in zip(pred, true)]))
    kappa = _kappa(true, pred, labels)
    if len(set(pred)) == 1 or len(set(true)) == 1:
        side = "judge" if len(set(pred)) == 1 else "people"
        notes.append(f"The {side} gave every row the same label ({(pred if side == 'judge' else true)[0]!r}), : kappa "
                     "is 0, because giving one answer to every row shows no skill beyond chance.")
    counts = pd.Series(true, dtype=object).value_counts()
    tied = [_plain(v) for v in counts.index[counts == counts.max()]]
    # the label people used most; in a tie, "passes" if it is one of the tied labels
    majority_label = positive if positive in tied else sorted(tied, key=str)[0]
    baselines = {}
    for name, label in (("always_pass", positive), ("majority", majority_label)):
        guess = [label] * n
        baselines[name] = Baseline(name, label, float(np.mean([g == t for g, t in zip(guess, true)])),
                                   _kappa(true, guess, labels))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a single label: the table is 1 x 1, which is right
        from sklearn.metrics import confusion_matrix

        matrix = confusion_matrix(true, pred, labels=labels)
    confusion = pd.DataFrame(matrix, index=pd.Index(labels, name="human"), columns=pd.Index(labels, name="predicted"))
    kept_index = predicted.index[keep.to_numpy()]
    disagreements = pd.DataFrame({"human": true, "predicted": pred}, index=kept_index)
    if texts is not None:
        text_column = _as_series(texts, "texts")
        if len(text_column) != len(predicted):
            raise EvaluateInputError(f"texts has {len(text_column)} rows, the labels have {len(predicted)}.",
                                     "Pass the text column of the same table, e.g. texts=rated['text'].")
        if isinstance(texts, pd.Series) and not text_column.index.equals(predicted.index) \
                and set(text_column.index) == set(predicted.index) and not text_column.index.has_duplicates:
            text_column = text_column.reindex(predicted.index)
        disagreements["text"] = text_column.to_numpy()[keep.to_numpy()]
    disagreements = disagreements[disagreements["human"] != disagreements["predicted"]]
    trust, why = _verdict(agreement, kappa, baselines)
    result = Calibration(n, agreement, kappa, baselines, confusion, disagreements, trust, why, positive,
                         int((~keep).sum()), notes, int(missing_pred.sum()), int(min_answered))
    if result.evidence_problems:
        result.trust = False
        problems = "; and ".join(result.evidence_problems)
        result.why = f"{problems[0].upper()}{problems[1:]}. On the rows compared alone: {why}"
    return result


def _verdict(agreement: float, kappa: float, baselines: dict[str, Baseline]) -> tuple[bool, str]:
    """Trust needs both: more agreement than every baseline, and kappa of at least 0.6."""
    best = max(baselines.values(), key=lambda b: b.agreement)
    beats = agreement > best.agreement
    strong = kappa >= TRUST_KAPPA
    if beats and strong:
        return True, (f"it agrees with people on {agreement:.0%} of rows, more than the best baseline "
                      f"('{best.name}', {best.agreement:.0%}), and its kappa of {kappa:.2f} is at least {TRUST_KAPPA}.")
    problems = []
    if not beats:
        problems.append(f"it agrees with people on {agreement:.0%} of rows, no more than simply always saying "
                        f"{best.predicts!r} ({best.agreement:.0%})")
    if not strong:
        problems.append(f"its kappa of {kappa:.2f} is below {TRUST_KAPPA}, so much of its agreement could be chance")
    return False, "; and ".join(problems) + "."


__all__ = ["MIN_ANSWERED", "TRUST_KAPPA", "Baseline", "Calibration", "calibrate"]
