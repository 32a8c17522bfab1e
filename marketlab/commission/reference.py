"""The course's reference extractions: each proposal's answers, filled in by hand from its text."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import ValidationError

from marketlab.data import FIX, datasets_dir

from .errors import CommissionError
from .schema import ProposalAnswers

EXTRACTIONS_FILE = "proposals/extractions.json"


def load_extractions(directory: str | os.PathLike | None = None) -> dict[str, ProposalAnswers]:
    """Reference answers by proposal id (the data folder's proposals/extractions.json), each validated."""
    path = datasets_dir(directory) / EXTRACTIONS_FILE
    if not path.is_file():
        raise CommissionError(f"{EXTRACTIONS_FILE}: file not found at {path}.", FIX)
    try:
        content = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CommissionError(f"{EXTRACTIONS_FILE} is not valid JSON (line {err.lineno}).", FIX) from None
    out: dict[str, ProposalAnswers] = {}
    for number, item in enumerate(content.get("proposals", []) if isinstance(content, dict) else [], start=1):
        proposal_id = str(item.get("proposal_id") or f"entry {number}")
        try:
            out[proposal_id] = ProposalAnswers.model_validate(item.get("answers"))
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise CommissionError(f"{EXTRACTIONS_FILE}, proposal {proposal_id}: {where}: {first['msg']}.",
                                  FIX) from None
    if not out:
        raise CommissionError(f"{EXTRACTIONS_FILE} holds no proposals.", FIX)
    return out
