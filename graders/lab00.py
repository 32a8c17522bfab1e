"""Hidden tests for Lab 0: the learner's functions on numbers and prompts they have not seen."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marketlab.checks import CheckResult, lab00
from marketlab.llm.config import LOCAL_MODEL

HOLDOUT_COST_CASES = (
    (250, 812, 95, "gpt-4o"),
    (12_000, 450, 200, "gpt-4.1-mini"),
    (3, 1500, 0, "gpt-4o-mini"),
    (777, 1234, 321, LOCAL_MODEL),
)
HOLDOUT_ASK_CASES = (
    ("Suggest a subject line for an email about trail shoes.", 1234),
    ("In five words, why carry a headlamp?", 0),
)


def grade_batch_cost(fn: Callable[..., Any]) -> CheckResult:
    """batch_cost on other row counts, token counts and models."""
    return lab00.check_batch_cost(fn, HOLDOUT_COST_CASES, strict=True)


def grade_ask(fn: Callable[..., Any]) -> CheckResult:
    """ask on other prompts and seeds, through the scripted endpoint (no model needed)."""
    return lab00.check_ask(fn, HOLDOUT_ASK_CASES, strict=True)
