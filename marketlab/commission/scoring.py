"""Scoring rules: a function that turns one proposal's extracted answers into 0, 1 or 2 per question.

The rules are code, so they give the same scores every time, on any proposal, and anyone can read
why a vendor got a 1. `score` applies them to every proposal and returns the scorecard.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from pydantic import ValidationError

from .errors import CommissionError
from .questions import QUESTION_IDS
from .schema import ProposalAnswers

Rules = Callable[[ProposalAnswers], Mapping[str, int]]
SCORECARD_COLUMNS = ("proposal_id", "question", "score")


def as_answers(extractions: Any) -> dict[str, ProposalAnswers]:
    """Extractions by proposal id, validated: ProposalAnswers, their dicts, or an extract() table."""
    if isinstance(extractions, pd.DataFrame):
        from .extract import to_answers

        return to_answers(extractions)
    if not isinstance(extractions, Mapping) or not extractions:
        raise CommissionError(f"The extractions are a {type(extractions).__name__}, not answers by proposal id.",
                              "Pass commission.load_extractions(), or the table commission.extract returned.")
    out = {}
    for proposal_id, answers in extractions.items():
        try:
            out[str(proposal_id)] = ProposalAnswers.model_validate(
                answers.model_dump() if isinstance(answers, ProposalAnswers) else answers)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise CommissionError(
                f"The answers for {proposal_id} do not fit the scorecard: {where}: {first['msg']}.",
                "Use the answers commission.load_extractions() or commission.extract gives.") from None
    return out


def _checked(proposal_id: str, given: Any) -> dict[str, int]:
    if not isinstance(given, Mapping):
        raise CommissionError(f"For {proposal_id} the rules returned a {type(given).__name__}, not a dictionary.",
                              "Return a dictionary with a score for each question, e.g. {'training_data': 2, ...}.")
    missing = [q for q in QUESTION_IDS if q not in given]
    if missing:
        raise CommissionError(f"For {proposal_id} the rules gave no score for {', '.join(missing)}.",
                              "Give every one of the five questions a score of 0, 1 or 2.")
    out = {}
    for question_id in QUESTION_IDS:
        value = given[question_id]
        if isinstance(value, bool) or not isinstance(value, int) or value not in (0, 1, 2):
            raise CommissionError(f"For {proposal_id}, {question_id} got {value!r}, not a score of 0, 1 or 2.",
                                  "Each score is the whole number 0, 1 or 2.")
        out[question_id] = int(value)
    return out


def score(extractions: Any, rules: Rules) -> pd.DataFrame:
    """Apply scoring rules to each proposal's answers: the scorecard, one row per proposal and question."""
    if not callable(rules):
        raise CommissionError(f"The rules are a {type(rules).__name__}, not a function.",
                              "Pass the function itself, without brackets: score(extractions, my_rules).")
    rows = []
    for proposal_id, answers in as_answers(extractions).items():
        for question_id, value in _checked(proposal_id, rules(answers)).items():
            rows.append({"proposal_id": proposal_id, "question": question_id, "score": value})
    return pd.DataFrame(rows, columns=list(SCORECARD_COLUMNS))
