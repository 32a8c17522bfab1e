"""Hidden tests for Lab 1: the learner's brief and build_messages on the holdout catalogue.

The holdout products (graders/holdout/products.csv) come from another company with other names,
so a function that hard-codes anything from the lab's products fails here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from marketlab import data
from marketlab.brief import Brief
from marketlab.checks import CheckResult, lab01

HOLDOUT_DIR = Path(__file__).resolve().parent / "holdout"


def holdout_products() -> pd.DataFrame:
    """Every holdout product (checks call no model, so all of them are cheap to run)."""
    return data.load("products", directory=HOLDOUT_DIR)


def lab_product_names() -> list[str]:
    """Names of the products learners saw in the lab (must never appear in holdout messages)."""
    return [str(name) for name in data.load("products")["name"]]


def grade_brief(brief: Any) -> CheckResult:
    """The learner's brief reaches engineering spec."""
    return lab01.check_brief(brief, strict=True)


def grade_build_messages(fn: Callable[..., Any], brief: Any = None) -> CheckResult:
    """build_messages on holdout products; the reference brief stands in if the learner's is unusable."""
    usable = brief if isinstance(brief, Brief) else None
    return lab01.check_build_messages(fn, holdout_products(), usable, foreign_names=lab_product_names(),
                                      strict=True)


def grade_artifacts(here: str | Path | None = None) -> CheckResult:
    """The saved brief.yaml and lab01_messages.py, loaded from the submission folder, on holdout products."""
    return lab01.check_saved_artifacts(holdout_products(), here, foreign_names=lab_product_names(), strict=True)
