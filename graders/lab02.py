"""Hidden tests for Lab 2: the learner's workflow.py on the holdout catalogue, in a fresh sandbox.

The same checks as in the notebook (marketlab.checks.lab02); only the data differs: the holdout
products come from another company, so a workflow that hard-codes the lab's products fails here.
The scripted endpoint that injects faults, and everything it observes, stays with the grader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from marketlab import data
from marketlab.brief import Brief
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


def grade_schema(sub: Any) -> CheckResult:
    """The output schema, described in the learner's kernel and judged here."""
    return lab02.check_schema(sub.describe("ProductCopy", "schema"), strict=False, quiet=True)


def grade_rules(sub: Any) -> CheckResult:
    """The rules against the holdout company's brand voice (the reference brief if the learner's is unusable)."""
    from marketlab import reference

    info = sub.describe("brief", "brief")
    brief = reference.load_brief()
    if info.get("is_brief"):
        try:
            candidate = Brief.model_validate(info["data"])
            if candidate.output is not None:
                brief = candidate
        except Exception:  # noqa: BLE001
            pass
    voice = data.load_brand_voice(HOLDOUT_DIR)
    return lab02.check_rules(sub.describe("RULES", "rules"), sub.describe("ProductCopy", "schema"), brief,
                             voice["banned_words"], strict=False, quiet=True)


def grade_weekly_cost(sub: Any) -> CheckResult:
    """weekly_cost on other trial sizes, token counts, volumes and models."""
    return lab02.check_weekly_cost(sub.function("weekly_cost"), HOLDOUT_COST_CASES, strict=False, quiet=True)


def grade_workflow(sub: Any) -> CheckResult:
    """workflow.py from the submission, on every holdout product, under faults and a budget."""
    voice = data.load_brand_voice(HOLDOUT_DIR)
    return lab02.check_workflow(holdout_products(), sub.folder, foreign_names=lab_product_names(),
                                banned_words=voice["banned_words"], harness=sub.harness, strict=False, quiet=True)


GRADERS = {"check-schema": grade_schema, "check-rules": grade_rules, "check-weekly-cost": grade_weekly_cost,
           "check-workflow": grade_workflow}
