"""The evaluation of a run's output, and its acceptance criteria, from evaluate.py or the run's own checks.

An evaluation table has one True/False column per check, `passed` (every check passed) and
`reason`, as marketlab.evaluate.run_checks returns it. It comes from the folder's
evaluate(outputs_df, products_df) when there is one, else from the check columns the workflow wrote
(run_batch(..., checks=...)), else there is none. Acceptance is read duck-typed from evaluate.py's
ACCEPTANCE: `min_pass_rate` (share of rows passing every check) and `must_pass` (check names that
every row must pass, or {name: share}).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pandas as pd

from marketlab.errors import MarketlabError
from marketlab.evaluate.compare import OVERALL, check_columns, pass_rates

from .exitcodes import RunFailedError

CHECK_PREFIX = "check_"


@dataclass(frozen=True)
class Evaluation:
    """Pass/fail per row and check, where it came from, and the pass rates."""

    table: pd.DataFrame
    source: str  # "evaluate.py" or "the workflow's checks"
    checks: list[str]
    rates: dict[str, float]
    keys: list[str] | None = None  # each evaluated row's key, as the user's table spells it

    @property
    def rows(self) -> int:
        """How many rows were evaluated (rows never sent are not)."""
        return len(self.table)

    @property
    def pass_rate(self) -> float:
        """The share of rows that passed every check."""
        return float(self.table[OVERALL].fillna(False).astype(bool).mean())


@dataclass(frozen=True)
class Criterion:
    """One acceptance criterion: what is required, what the run reached, and whether that is enough."""

    name: str
    target: float
    reached: float

    @property
    def met(self) -> bool:
        """True when the run reached the target."""
        return self.reached >= self.target - 1e-12


@dataclass(frozen=True)
class AcceptanceResult:
    """Every criterion of ACCEPTANCE against one run."""

    criteria: list[Criterion]
    verdict: str | None = None  # the words of a notebook that judged itself (takehome.hold_to_acceptance)

    @property
    def met(self) -> bool:
        """True when every criterion is met."""
        return all(c.met for c in self.criteria)

    def missed(self) -> list[Criterion]:
        """The criteria the run did not meet."""
        return [c for c in self.criteria if not c.met]

    def describe(self) -> str:
        """One sentence: met, or which criteria were missed and by how much."""
        if self.verdict is not None:
            return ("The run meets its acceptance criteria: " if self.met else
                    "The run misses its acceptance criteria: ") + self.verdict.rstrip(".") + "."
        if self.met:
            return "The run meets every acceptance criterion (" + "; ".join(
                f"{c.name} {c.reached:.0%}, at least {c.target:.0%} needed" for c in self.criteria) + ")."
        return "The run misses its acceptance criteria: " + "; ".join(
            f"{c.name} is {c.reached:.0%} where at least {c.target:.0%} is required" for c in self.missed()) + "."


def from_evaluator(evaluator: ModuleType, outputs: pd.DataFrame, products: pd.DataFrame,
                   keys: list[str] | None = None) -> Evaluation:
    """Run evaluate.py's evaluate(outputs_df, products_df) and check that it returned an evaluation table."""
    try:
        table = evaluator.evaluate(outputs, products)
    except MarketlabError as err:
        raise RunFailedError(f"evaluate.py could not check the output: {err.problem}", err.fix) from None
    except Exception as err:  # learner code can fail in any way: say how, without a stack trace
        raise RunFailedError(f"evaluate.py stopped with {type(err).__name__}: {_first_line(err)}",
                             "Run evaluate(outputs_df, products_df) in the notebook where you wrote it, on this "
                             "output, to see the problem.") from None
    if not isinstance(table, pd.DataFrame) or len(table) != len(outputs):
        got = f"{len(table)} rows" if isinstance(table, pd.DataFrame) else f"a {type(table).__name__}"
        raise RunFailedError(f"evaluate.py's evaluate() returned {got}; it must return one row per output row "
                             f"({len(outputs)}).",
                             "Return the table run_checks(outputs_df, products_df, CHECKS) gives.")
    try:
        checks = check_columns(table, "the table evaluate() returned")
    except MarketlabError as err:
        raise RunFailedError(err.problem, err.fix) from None
    return Evaluation(table.reset_index(drop=True), "evaluate.py", checks, pass_rates(table, checks).to_dict(), keys)


def from_run_checks(outputs: pd.DataFrame, key: str | None, keys: list[str] | None = None) -> Evaluation | None:
    """The evaluation in the check columns run_batch(..., checks=...) wrote, over the rows it checked.

    Rows that were never checked (no usable reply, never sent) are not in it: a pass rate is over
    the replies that were read. None when the output has no check columns or no checked row.
    """
    names = [str(c) for c in outputs.columns if str(c).startswith(CHECK_PREFIX) and c != "check_reason"]
    if not names or "checks" not in outputs.columns:
        return None
    checked = outputs["checks"].astype(str).isin(["passed", "failed"]).to_numpy()
    if not checked.any():
        return None
    if keys is None and key and key in outputs.columns:
        keys = outputs[key].astype(str).tolist()
    keys = [k for k, c in zip(keys, checked) if c] if keys is not None else None
    rows = outputs[checked]
    table = pd.DataFrame(index=rows.index)
    checks = [name[len(CHECK_PREFIX):] for name in names]
    for name, column in zip(checks, names):
        table[name] = rows[column].astype("boolean").fillna(False).astype(bool)
    table[OVERALL] = rows["checks"].astype(str).eq("passed")
    table["reason"] = rows.get("check_reason", pd.Series("", index=rows.index)).fillna("")
    table = table.reset_index(drop=True)
    return Evaluation(table, "the workflow's checks", checks, pass_rates(table, checks).to_dict(), keys)


def acceptance_of(acceptance: Any, evaluation: Evaluation) -> AcceptanceResult | None:
    """ACCEPTANCE against the evaluation; None when there is nothing to accept against."""
    if acceptance is None:
        return None
    get = acceptance.get if isinstance(acceptance, Mapping) else lambda name, default=None: getattr(
        acceptance, name, default)
    min_pass_rate = get("min_pass_rate", None)
    must_pass = get("must_pass", None) or []
    if min_pass_rate is None and not must_pass:
        raise RunFailedError("evaluate.py's ACCEPTANCE has neither min_pass_rate nor must_pass.",
                             "Write ACCEPTANCE = Acceptance(min_pass_rate=0.9, must_pass=['faithfulness']).")
    required = {str(k): float(v) for k, v in must_pass.items()} if isinstance(must_pass, Mapping) else \
        {str(name): 1.0 for name in must_pass}
    unknown = [name for name in required if name not in evaluation.checks]
    if unknown:
        raise RunFailedError(f"ACCEPTANCE names the check '{unknown[0]}', which evaluate() does not return.",
                             f"Use one of the checks it returns: {', '.join(evaluation.checks)}.")
    criteria = []
    if min_pass_rate is not None:
        criteria.append(Criterion("pass rate (every check)", float(min_pass_rate), evaluation.pass_rate))
    criteria += [Criterion(f"'{name}' pass rate", target, evaluation.rates[name]) for name, target in required.items()]
    return AcceptanceResult(criteria)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else "(no message)"


__all__ = ["AcceptanceResult", "Criterion", "Evaluation", "acceptance_of", "from_evaluator", "from_run_checks"]
