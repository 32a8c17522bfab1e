"""Hidden tests for Lab 1: the learner's brief and build_messages on the holdout catalogue.

The holdout products (graders/holdout/products.csv) come from another company with other names,
so a function that hard-codes anything from the lab's products fails here. Graders run outside
the learner's sandbox; the learner's YAML is parsed inside it and comes back as data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from marketlab import data
from marketlab.brief import Brief
from marketlab.checks import CheckResult, lab01
from marketlab.grading.wire import RemoteError

HOLDOUT_DIR = Path(__file__).resolve().parent / "holdout"
SECTIONS = {
    "check-objective": ("objective", ("objective", "audience")),
    "check-inputs": ("inputs", ("inputs",)),
    "check-output": ("output", ("output", "constraints", "acceptance")),
    "check-operations": ("operations", ("budget", "monitoring", "ownership", "failure_handling")),
}


def holdout_products() -> pd.DataFrame:
    """Every holdout product (checks call no model, so all of them are cheap to run)."""
    return data.load("products", directory=HOLDOUT_DIR)


def lab_product_names() -> list[str]:
    """Names of the products learners saw in the lab (must never appear in holdout messages)."""
    return [str(name) for name in data.load("products")["name"]]


def _brief(sub: Any, request: dict[str, Any]) -> Brief | str:
    """A Brief built on the learner's side, or the reason it could not be built."""
    try:
        answer = sub.ask(request) if hasattr(sub, "ask") else None
    except RemoteError as err:
        return f"{err.kind}: {err.text}"
    try:
        return Brief.model_validate(answer["__brief_data__"])
    except Exception:  # noqa: BLE001 - whatever came back is not a brief
        return "it is not a brief"


def _section_grader(grade_id: str):  # noqa: ANN202
    section, names = SECTIONS[grade_id]

    def grade(sub: Any) -> CheckResult:
        brief = _brief(sub, {"op": "sections", "names": list(names)})
        if isinstance(brief, str):
            result = CheckResult("brief-rules", f"the {section} part of the brief passes its lint rules")
            result.fail(f"the {section} part could not be read: {brief[:200]}")
            result.hint = "Run the cells of this part again; the check above them names the line to fix."
            return result
        return lab01.check_section(brief, section, strict=False, quiet=True)

    grade.__doc__ = f"The {section} part of the learner's brief, assembled from their sections."
    return grade


def grade_brief(sub: Any) -> CheckResult:
    """The learner's whole brief reaches engineering spec."""
    info = sub.describe("brief", "brief")
    return lab01.check_brief(info.get("data") if info.get("is_brief") else {"not": "a brief"}, strict=False,
                             quiet=True)


def _learner_brief(sub: Any) -> Brief | None:
    try:
        info = sub.describe("brief", "brief")
        return Brief.model_validate(info["data"]) if info.get("is_brief") else None
    except Exception:  # noqa: BLE001 - no usable brief: the reference one stands in
        return None


def grade_build_messages(sub: Any) -> CheckResult:
    """build_messages on holdout products; the reference brief stands in if the learner's is unusable."""
    return lab01.check_build_messages(sub.function("build_messages"), holdout_products(), _learner_brief(sub),
                                      foreign_names=lab_product_names(), strict=False, quiet=True)


def grade_artifacts(sub: Any) -> CheckResult:
    """The saved brief.yaml and lab01_messages.py, loaded in a fresh sandbox, on holdout products."""
    return lab01.check_saved_artifacts(holdout_products(), sub.folder, foreign_names=lab_product_names(),
                                       harness=sub.harness, strict=False, quiet=True)


GRADERS = {**{grade_id: _section_grader(grade_id) for grade_id in SECTIONS},
           "check-brief": grade_brief, "check-build-messages": grade_build_messages,
           "check-artifacts": grade_artifacts}
