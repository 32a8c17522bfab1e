"""Hidden tests for Lab 0: the learner's functions on numbers and prompts they have not seen.

Each grader runs in the grading worker, outside the learner's sandbox: it calls the learner's
functions there with these inputs and judges the answers here (see marketlab.grading.execute).
"""

from __future__ import annotations

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


def grade_batch_cost(sub) -> CheckResult:  # noqa: ANN001 - a marketlab.grading.execute.Submission
    """batch_cost on other row counts, token counts and models."""
    return lab00.check_batch_cost(sub.function("batch_cost"), HOLDOUT_COST_CASES, strict=False, quiet=True)


def grade_ask(sub) -> CheckResult:  # noqa: ANN001
    """ask on other prompts and seeds; the scripted endpoint stays with the grader."""
    return lab00.check_ask(sub.function("ask"), HOLDOUT_ASK_CASES, harness=sub.harness, strict=False, quiet=True)


GRADERS = {"check-batch-cost": grade_batch_cost, "check-ask": grade_ask}
