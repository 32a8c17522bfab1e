"""Hidden tests for the capstone: the learner's packaged folder, run with `marketlab run` on a holdout table.

The same checks as in the notebook (marketlab.checks.capstone); only the data differs. The brief is
checked as the kernel describes it (the folder does not exist yet at that cell). The folder
runs in a fresh read-only sandbox on a table from another company (graders/holdout) of the kind the
learner chose (TASK, read from the kernel as plain data and checked against the allowed names),
with the scripted endpoint injecting faults and counting tokens on this side of the socket. The
monitoring check runs monitor.py on simulated weekly runs of the holdout products.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from marketlab import data
from marketlab.checks import CheckResult, capstone
from marketlab.grading import wire

HOLDOUT_DIR = Path(__file__).resolve().parent / "holdout"
CHANGE_WEEK = 9  # the simulated model change in the holdout weekly runs (the notebook's is week 10)


def _folder(sub: Any) -> Path:
    return sub.folder / capstone.PACKAGE_DIR


def _task(sub: Any) -> tuple[str | None, CheckResult | None]:
    """The learner's TASK, if it is one of the allowed names; else a failed result saying so."""
    try:
        task = sub.describe("TASK", "value")
    except wire.RemoteError:
        task = None
    if isinstance(task, str) and task in capstone.TASK_KEYS:
        return task, None
    result = CheckResult("package", "marketlab run on your folder, on rows it has never seen")
    result.fail(f"TASK must be one of {', '.join(repr(t) for t in capstone.TASK_KEYS)}")
    result.hint = "Set TASK in the first exercise cell and run the notebook from the top."
    return None, result


def holdout_rows(task: str) -> pd.DataFrame:
    """The holdout table of the task's kind (another company's), as many rows as the notebook's check runs."""
    return data.load(task, directory=HOLDOUT_DIR).head(capstone.UNSEEN_ROWS).reset_index(drop=True)


@lru_cache(maxsize=1)
def _weekly_runs() -> tuple[pd.DataFrame, pd.DataFrame]:
    from marketlab.checks.lab04 import simulated_weekly_runs

    products = data.load("products", directory=HOLDOUT_DIR)
    return (simulated_weekly_runs(products, weeks=16, change_week=CHANGE_WEEK, seed=7),
            simulated_weekly_runs(products, weeks=16, change_week=999, seed=8))


def grade_brief(sub: Any) -> CheckResult:
    """The notebook's brief (described in the kernel as plain data), rebuilt and linted here."""
    from marketlab.brief import Brief

    try:
        info = sub.describe("brief", "brief")
        brief = Brief.model_validate(info["data"]) if info.get("is_brief") else None
    except Exception:  # noqa: BLE001 - missing, or data that is not a brief
        brief = None
    if brief is None:
        result = CheckResult("brief", "your brief is an engineering spec: every rule of the Lab 1 linter passes")
        result.fail("there is no brief: the brief cell did not make one")
        result.hint = "Run the brief cell: brief = Brief.from_yaml(BRIEF_YAML)."
        return result
    return capstone.check_brief(brief, strict=False, quiet=True)


def grade_package(sub: Any) -> CheckResult:
    """The folder, run with marketlab run in the sandbox on a holdout table, under faults and a budget."""
    task, refused = _task(sub)
    if refused is not None:
        return refused
    assert task is not None
    return capstone.check_package(_folder(sub), holdout_rows(task), capstone.TASK_KEYS[task], harness=sub.harness,
                                  strict=False, quiet=True)


def grade_monitoring(sub: Any) -> CheckResult:
    """monitor.py in the sandbox on simulated weekly runs of the holdout products."""
    changed, stable = _weekly_runs()
    return capstone.check_monitoring(_folder(sub), changed, stable, CHANGE_WEEK, harness=sub.harness, strict=False,
                                     quiet=True)


def grade_readme(sub: Any) -> CheckResult:
    """README.md of the package, read here."""
    return capstone.check_readme(_folder(sub), strict=False, quiet=True)


GRADERS = {"check-brief": grade_brief, "check-package": grade_package, "check-monitoring": grade_monitoring,
           "check-readme": grade_readme}
