"""Hidden tests for Lab 2: the learner's workflow.py on the holdout catalogue, in a clean process.

The same checks as in the notebook (marketlab.checks.lab02); only the data differs: the holdout
products come from another company, so a workflow that hard-codes the lab's products fails here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from marketlab import data
from marketlab.checks import CheckResult, lab02

HOLDOUT_DIR = Path(__file__).resolve().parent / "holdout"
HOLDOUT_COST_CASES = (
    (7, 640, 150, 2, 2500, "gpt-4o"),
    (25, 300, 90, 0, 120, "gpt-4.1-nano"),
)


def holdout_products() -> pd.DataFrame:
    """Every holdout product (the scripted endpoint answers at once, so all of them are cheap)."""
    return data.load("products", directory=HOLDOUT_DIR)


def lab_product_names() -> list[str]:
    """Names of the lab's products, which must never appear in requests about holdout products."""
    return [str(name) for name in data.load("products")["name"]]


def grade_schema(schema: Any) -> CheckResult:
    """The output schema (no data involved: the same check as in the notebook)."""
    return lab02.check_schema(schema, strict=True)


def grade_rules(rules: Any, schema: Any, brief: Any = None) -> CheckResult:
    """The rules against the holdout company's brand voice."""
    from marketlab import reference

    usable = brief if getattr(brief, "output", None) is not None else reference.load_brief()
    voice = data.load_brand_voice(HOLDOUT_DIR)
    return lab02.check_rules(rules, schema, usable, voice["banned_words"], strict=True)


def grade_weekly_cost(fn: Callable[..., Any]) -> CheckResult:
    """weekly_cost on other trial sizes, token counts, volumes and models."""
    return lab02.check_weekly_cost(fn, HOLDOUT_COST_CASES, strict=True)


def grade_workflow(here: str | Path | None = None) -> CheckResult:
    """workflow.py from the submission folder, on every holdout product, under faults and a budget."""
    voice = data.load_brand_voice(HOLDOUT_DIR)
    return lab02.check_workflow(holdout_products(), here, foreign_names=lab_product_names(),
                                banned_words=voice["banned_words"], strict=True)
