"""Reference artifacts that ship with marketlab, used when a learner's own are missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from marketlab.brief import Brief

HERE = Path(__file__).resolve().parent


def brief_path() -> Path:
    """Path of the reference brief (an engineering-spec brief for product descriptions)."""
    return HERE / "brief.yaml"


def load_brief() -> Brief:
    """The reference brief."""
    return Brief.load(brief_path())


def build_messages(brief: Brief, record: Any) -> list[dict[str, str]]:
    """Reference Lab 1 answer: compile the brief and one product into chat messages."""
    return brief.to_messages(record)
