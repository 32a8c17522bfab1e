"""Proposals as a table the runner can work through: one row per proposal and question."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from .errors import CommissionError
from .questions import BY_ID, QUESTION_IDS

PROPOSAL_COLUMNS = ("proposal_id", "vendor", "text")


def proposal_frame(proposals: Any) -> pd.DataFrame:
    """Proposals (load_proposals()'s list of dicts, or a DataFrame) as a table with proposal_id, vendor, text."""
    if isinstance(proposals, pd.DataFrame):
        frame = proposals.copy()
    elif isinstance(proposals, Iterable) and not isinstance(proposals, (str, bytes, Mapping)):
        items = list(proposals)
        if not all(isinstance(item, Mapping) for item in items):
            raise CommissionError("The proposals are not a list of dictionaries.",
                                  "Pass data.load_proposals(), or a table with proposal_id, vendor and text.")
        frame = pd.DataFrame([{k: item.get(k) for k in PROPOSAL_COLUMNS} for item in items])
    else:
        raise CommissionError(f"The proposals are a {type(proposals).__name__}, not a list or a table.",
                              "Pass data.load_proposals(), or a table with proposal_id, vendor and text.")
    if frame.empty:
        raise CommissionError("There are no proposals to read.", "Pass at least one proposal.")
    missing = [c for c in PROPOSAL_COLUMNS if c not in frame.columns]
    if missing:
        raise CommissionError(f"The proposals table has no column {', '.join(map(repr, missing))}.",
                              "Each proposal needs a proposal_id, the vendor's name and the text.")
    for column in PROPOSAL_COLUMNS:
        blank = frame[column].isna() | (frame[column].astype(str).str.strip() == "")
        if blank.any():
            row = int(blank.to_numpy().nonzero()[0][0])
            raise CommissionError(f"Proposal number {row + 1} has no {column}.",
                                  f"Fill in its {column}, or leave that proposal out.")
    if frame["proposal_id"].duplicated().any():
        twice = frame.loc[frame["proposal_id"].duplicated(), "proposal_id"].iloc[0]
        raise CommissionError(f"Proposal id {twice!r} appears twice.", "Give each proposal its own id.")
    return frame[list(PROPOSAL_COLUMNS)].reset_index(drop=True)


def question_rows(proposals: Any, question_id: str) -> pd.DataFrame:
    """One row per proposal for one question: proposal_id, vendor, text, question and its wording."""
    frame = proposal_frame(proposals)
    frame["question"] = question_id
    frame["question_text"] = BY_ID[question_id].wording
    return frame


def all_question_rows(proposals: Any, questions: Iterable[str] = QUESTION_IDS) -> pd.DataFrame:
    """Every proposal with every question: the records an extraction works through."""
    return pd.concat([question_rows(proposals, q) for q in questions], ignore_index=True)
