"""Reading the cells and rows of the course's tables: empty cells, semicolon lists, a row as a dict.

    is_missing(value)     # None, NaN, pandas NA and blank text are all "empty"
    split_list(value)     # "a; b;; c" -> ["a", "b", "c"]
    as_record(row)        # a dict from a dict, a pandas row (Series) or a namedtuple-like row

General helpers with no knowledge of briefs, checks or runs: every package that reads a product
or results table uses them, so they live here rather than in one of those packages.
marketlab.brief re-exports is_missing and split_list: learners use them from there (Lab 1 names it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from marketlab.errors import RecordError


def is_missing(value: Any) -> bool:
    """True for None, NaN, pandas NA and blank text: an optional field left empty."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str):
        return not value.strip() or value.strip().lower() in {"nan", "none", "null"}
    try:
        import pandas as pd

        return bool(pd.isna(value)) if pd.api.types.is_scalar(value) else False
    except ImportError:  # pragma: no cover - pandas is a dependency
        return False


def split_list(value: Any) -> list[str]:
    """Items of a semicolon-separated field (or a list), blanks dropped."""
    if is_missing(value):
        return []
    items = value if isinstance(value, (list, tuple)) else str(value).split(";")
    return [str(item).strip() for item in items if not is_missing(item)]


def as_record(record: Any) -> dict[str, Any]:
    """A plain dict from a dict, a pandas Series or a namedtuple-like row."""
    if isinstance(record, Mapping):
        return dict(record)
    if hasattr(record, "to_dict"):
        return dict(record.to_dict())
    if hasattr(record, "_asdict"):
        return dict(record._asdict())
    raise RecordError(f"A record must be a dict or a pandas row, not {type(record).__name__}.",
                      "Pass one row of the table: a dict, or a row from df.iterrows() or df.iloc[i].")


__all__ = ["as_record", "is_missing", "split_list"]
