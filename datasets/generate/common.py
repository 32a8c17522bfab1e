"""Shared vocabularies, company profiles and deterministic writers for the generator."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

# Fixed vocabularies are declared once, in the loader, and imported here.
from marketlab.data import (  # noqa: E402,F401
    CATEGORIES,
    CHANNEL_FOCUS,
    COPY_CHANNELS,
    DEFECTS,
    PERSONAS,
    SCORECARD_QUESTIONS,
    SENTIMENTS,
    TOPICS,
)


@dataclass(frozen=True)
class Company:
    """A fictional retailer: learner data and holdout data use different ones."""

    name: str
    short: str
    sku_prefix: str
    sku_start: int
    seed: int


RIDGELINE = Company("Ridgeline Outfitters", "Ridgeline", "RO", 1001, 20240611)
HALCYON = Company("Halcyon Expeditions", "Halcyon", "HX", 3001, 77310529)


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    """Write a frame as UTF-8 CSV with Unix newlines, no index, floats pre-formatted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, lineterminator="\n", encoding="utf-8")
    return path


def write_text(text: str, path: Path) -> Path:
    """Write text with exactly one trailing newline and Unix line endings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8", newline="\n")
    return path


def fmt(x: float, places: int = 2) -> str:
    """Format a float with a fixed number of decimals (stable across platforms)."""
    return f"{x:.{places}f}"
