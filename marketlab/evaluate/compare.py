"""A/B comparison of two prompt or brief versions on the same inputs, with a ship / iterate / stop verdict.

    from marketlab.evaluate.compare import Acceptance, compare
    result = compare(results_v1, results_v2, Acceptance(min_pass_rate=0.8, must_pass=["faithfulness"]))
    print(result)              # pass rates, the interval, the test and the verdict in plain words
    result.by_check            # check, a, b, change

a and b are run_checks results: one True/False column per check (True = passed), plus `passed`
(every check passed) and `reason`. On the same inputs in the same order the comparison is paired
(each text of A against the same input's text of B); on different inputs (two samples, such as
v1 and v2 texts written for different products) it compares two independent samples.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import EvaluateInputError

CONFIDENCE = 0.95
RESAMPLES = 9999
OVERALL = "passed"
INPUT_KEYS = ("sku", "channel")  # what identifies an input; output_id and prompt_version differ between versions


class Acceptance(BaseModel):
    """The brief's acceptance criteria, as numbers version B must meet.

    min_pass_rate: the share of texts that must pass every check (0.8 = 80%).
    must_pass: checks that must pass on every row (a list of names), or at a rate ({"faithfulness": 0.95}).
    min_improvement: how much B's pass rate must beat A's (0.05 = five points; 0 = at least as good).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_pass_rate: float = Field(0.0, ge=0, le=1)
    must_pass: list[str] | dict[str, float] = Field(default_factory=list)
    min_improvement: float = Field(0.0, ge=-1, le=1)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            item = err.errors(include_url=False)[0]
            where = str(item.get("loc", ("value",))[0])
            raise EvaluateInputError(f"Acceptance: {where} is {item.get('input')!r}: {item.get('msg', 'not valid')}.",
                                     "Give min_pass_rate and min_improvement as shares (0.8 for 80%), and "
                                     "must_pass as a list of check names or {name: share}.") from None

    def required_rates(self) -> dict[str, float]:
        """{check name: the share of rows that must pass it}."""
        if isinstance(self.must_pass, dict):
            return {str(k): float(v) for k, v in self.must_pass.items()}
        return {str(name): 1.0 for name in self.must_pass}


@dataclass(frozen=True)
class Criterion:
    """One acceptance criterion, with what B reached and whether it is met (and whether A met it)."""

    criterion: str
    target: float
    b: float
    met: bool
    a_met: bool | None  # None when the criterion only makes sense for B (the improvement over A)


@dataclass(frozen=True)
class PairwiseSummary:
    """What a pairwise judge said over all pairs."""

    pairs: int
    b_wins: int
    a_wins: int
    ties: int
    unanswered: int
    first_shown_won: float | None  # share of decided pairs won by the text shown first: far from 0.5 = order bias

    @property
    def b_win_rate(self) -> float | None:
        """B's wins among the answered pairs (ties count as not a win)."""
        answered = self.b_wins + self.a_wins + self.ties
        return self.b_wins / answered if answered else None


@dataclass
class Comparison:
    """B against A on the same inputs: pass rates, the paired interval and test, and the verdict."""

    n: int
    checks: list[str]
    by_check: pd.DataFrame  # check, a, b, change
    pass_rate_a: float
    pass_rate_b: float
    difference: float  # B - A, in share of texts
    interval: tuple[float, float]  # bootstrap interval of the difference (paired when the inputs are the same)
    a_only: int  # texts that passed with A and failed with B (paired only; 0 for two samples)
    b_only: int  # texts that failed with A and passed with B (paired only; 0 for two samples)
    p_value: float  # paired: exact binomial (McNemar) test on discordant pairs; two samples: Fisher's exact test
    criteria: list[Criterion]
    verdict: str  # "ship" | "iterate" | "stop"
    why: str
    acceptance: Acceptance
    pairwise: PairwiseSummary | None = None
    confidence: float = CONFIDENCE
    notes: list[str] = field(default_factory=list)
    paired: bool = True
    n_b: int | None = None  # texts of B, when the two samples differ in size
    unchecked_a: int = 0  # texts of A a check could not check (no claim recognised): not passed, counted apart
    unchecked_b: int = 0

    def table(self) -> pd.DataFrame:
        """Pass rates by check plus the overall row (every check passed), as one tidy table."""
        overall = pd.DataFrame([{"check": "all checks", "a": self.pass_rate_a, "b": self.pass_rate_b,
                                 "change": self.difference}])
        return pd.concat([self.by_check, overall], ignore_index=True)

    def criteria_table(self) -> pd.DataFrame:
        """One row per acceptance criterion: the target, what B reached, and whether it is met."""
        return pd.DataFrame([c.__dict__ for c in self.criteria])

    def __str__(self) -> str:
        low, high = self.interval
        sizes = f"{self.n} texts" if self.paired else f"{self.n} texts of A and {self.n_b} of B (two samples)"
        lines = [f"A/B on {sizes}: A passes {self.pass_rate_a:.0%}, B passes {self.pass_rate_b:.0%} "
                 f"({_points(self.difference)}; {self.confidence:.0%} interval {_points(low)} to {_points(high)})."]
        if self.paired:
            lines.append(f"  {self.b_only} text(s) passed only with B, {self.a_only} only with A (exact test p = "
                         f"{self.p_value:.3g}).")
        else:
            lines.append(f"  Fisher's exact test on the pass counts: p = {self.p_value:.3g}.")
        if self.pairwise is not None and self.pairwise.b_win_rate is not None:
            lines.append(f"  Pairwise judge: B won {self.pairwise.b_win_rate:.0%} of {self.pairwise.pairs} pairs "
                         f"({self.pairwise.ties} ties, {self.pairwise.unanswered} unanswered).")
        if self.unchecked_a or self.unchecked_b:
            lines.append(f"  Unchecked (a check recognised nothing to check; counted as not passing): "
                         f"{self.unchecked_a} text(s) of A, {self.unchecked_b} of B.")
        lines.append(f"  Verdict: {self.verdict.upper()}. {self.why}")
        lines += [f"  Note: {note}" for note in self.notes]
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def _points(share: float) -> str:
    return f"{share * 100:+.0f} points"


def same_inputs(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """True when a and b may be on the same inputs: as many rows, and the same input keys (in any order)."""
    if len(a) != len(b):
        return False
    keys = [k for k in INPUT_KEYS if k in a.columns and k in b.columns]
    return all(sorted(a[k].astype(str)) == sorted(b[k].astype(str)) for k in keys)


def check_same_inputs(a: pd.DataFrame, b: pd.DataFrame, what: str = "a and b") -> None:
    """a and b are on the same inputs: as many rows, and the same sku and channel row by row when both have them."""
    if len(a) != len(b):
        raise EvaluateInputError(f"{what} have different numbers of rows ({len(a)} and {len(b)}).",
                                 "Run both versions on the same inputs, in the same order, so that row 1 of one "
                                 "is row 1 of the other.")
    for key in (k for k in INPUT_KEYS if k in a.columns and k in b.columns):
        left, right = a[key].astype(str).to_numpy(), b[key].astype(str).to_numpy()
        differ = np.flatnonzero(left != right)
        if len(differ):
            row = int(differ[0])
            raise EvaluateInputError(
                f"{what} are not on the same inputs: row {row + 1} has {key} '{left[row]}' in one and "
                f"'{right[row]}' in the other ({len(differ)} row(s) differ).",
                f"Sort both the same way (df.sort_values('{key}').reset_index(drop=True)), or run both versions "
                "on the same input table.")


def check_columns(results: pd.DataFrame, what: str = "results") -> list[str]:
    """The check columns of a run_checks result (True/False columns other than `passed`), checked."""
    if not isinstance(results, pd.DataFrame):
        raise EvaluateInputError(f"{what} is a {type(results).__name__}, not a table.",
                                 "Pass the table run_checks returned.")
    if results.empty:
        raise EvaluateInputError(f"{what} has no rows.", "Pass the table run_checks returned for your texts.")
    if OVERALL not in results.columns:
        raise EvaluateInputError(f"{what} has no '{OVERALL}' column, so it is not a run_checks result.",
                                 "Pass the table run_checks returned (one True/False column per check, then "
                                 "'passed' and 'reason').")
    checks = [c for c in results.columns if c != OVERALL and _is_bool(results[c])]
    if not checks:
        raise EvaluateInputError(f"{what} has no check columns (True/False columns named after the checks).",
                                 "Pass the table run_checks returned, not only its 'passed' column.")
    return checks


def _is_bool(column: pd.Series) -> bool:
    return pd.api.types.is_bool_dtype(column.dtype)


def pass_rates(results: pd.DataFrame, checks: list[str] | None = None) -> pd.Series:
    """The share of rows that pass each check (a check that was not run on a row counts as not passed)."""
    checks = checks if checks is not None else check_columns(results)
    return pd.Series({c: float(results[c].fillna(False).astype(bool).mean()) for c in checks}, dtype=float)


def _interval(a: np.ndarray, b: np.ndarray, seed: int, notes: list[str], paired: bool = True) -> tuple[float, float]:
    """Bootstrap interval of mean(b) - mean(a): paired (same inputs) or of two independent samples."""
    if paired:
        difference = b - a
        if np.all(difference == difference[0]):
            notes.append("Every text changed the same way between A and B, so the interval is that one value.")
            return float(difference[0]), float(difference[0])
    elif np.all(a == a[0]) and np.all(b == b[0]):
        notes.append("Every text of A, and every text of B, came out the same, so the interval is that one value.")
        return float(b[0] - a[0]), float(b[0] - a[0])

    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(y, axis=axis) - np.mean(x, axis=axis)

    from scipy.stats import bootstrap  # scipy.stats takes about two core-seconds to import: only when used

    for method in ("BCa", "percentile"):  # BCa is more accurate; it is undefined on some near-constant data
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = bootstrap((a, b), statistic, paired=paired, vectorized=True, n_resamples=RESAMPLES,
                              confidence_level=CONFIDENCE, method=method, rng=np.random.default_rng(seed))
        low, high = float(found.confidence_interval.low), float(found.confidence_interval.high)
        if not (np.isnan(low) or np.isnan(high)):
            return low, high
    return float("nan"), float("nan")


def _pairwise_summary(table: Any, n: int) -> PairwiseSummary:
    if not isinstance(table, pd.DataFrame) or "winner" not in table.columns:
        raise EvaluateInputError("pairwise= is not a pairwise() result (it needs a 'winner' column).",
                                 "Pass the table marketlab.evaluate.pairwise(a, b, rubric) returned.")
    if len(table) != n:
        raise EvaluateInputError(f"pairwise= has {len(table)} rows but a and b have {n}.",
                                 "Run pairwise() on the same two tables you compare.")
    winner = table["winner"].astype("string")
    decided = winner.isin(["a", "b"])
    first_won = None
    if "shown_first" in table.columns and decided.any():
        first_won = float((winner[decided] == table["shown_first"].astype("string")[decided]).mean())
    return PairwiseSummary(pairs=n, b_wins=int((winner == "b").sum()), a_wins=int((winner == "a").sum()),
                           ties=int((winner == "tie").sum()), unanswered=int(winner.isna().sum()),
                           first_shown_won=first_won)


def _criteria(acceptance: Acceptance, rates_a: pd.Series, rates_b: pd.Series, overall_a: float, overall_b: float,
              checks: list[str]) -> list[Criterion]:
    unknown = [name for name in acceptance.required_rates() if name not in checks]
    if unknown:
        raise EvaluateInputError(f"Acceptance names check(s) {unknown} that the results do not have.",
                                 f"Use the names of the check columns: {', '.join(checks)}.")
    found = [Criterion("pass rate (every check)", acceptance.min_pass_rate, overall_b,
                       overall_b >= acceptance.min_pass_rate, overall_a >= acceptance.min_pass_rate)]
    for name, rate in acceptance.required_rates().items():
        found.append(Criterion(f"'{name}' pass rate", rate, float(rates_b[name]), rates_b[name] >= rate,
                               bool(rates_a[name] >= rate)))
    found.append(Criterion("improvement over A", acceptance.min_improvement, overall_b - overall_a,
                           overall_b - overall_a >= acceptance.min_improvement - 1e-12, None))
    return found


def compare(a: pd.DataFrame, b: pd.DataFrame, acceptance: Acceptance | None = None, *, seed: int = 0,
            pairwise: pd.DataFrame | None = None) -> Comparison:
    """Compare version B with version A on the same inputs and decide: ship, iterate or stop.

    The rule, in this order:
    - ship: B meets every acceptance criterion and is not significantly worse than A (the 95% paired
      bootstrap interval of B's pass rate minus A's does not lie wholly below zero);
    - iterate: B misses acceptance but is better than A: a higher pass rate, or it meets a criterion
      that A misses;
    - stop: B misses acceptance and is not better than A (or it is significantly worse).
    Without acceptance criteria, B only has to be at least as good as A.

    Same inputs (as many rows, the same sku/channel row by row) are compared in pairs; tables on
    different inputs (other products, or another number of texts) as two independent samples, with
    a note. The same inputs in another order are refused: sort both the same way.
    """
    checks_a, checks_b = check_columns(a, "a"), check_columns(b, "b")
    if checks_a != checks_b:
        only_a = [c for c in checks_a if c not in checks_b]
        only_b = [c for c in checks_b if c not in checks_a]
        missing = "; ".join(part for part in (f"only a has {only_a}" if only_a else "",
                                              f"only b has {only_b}" if only_b else "") if part)
        raise EvaluateInputError(f"a and b were not checked with the same checks ({missing or 'different order'}).",
                                 "Run run_checks with the same list of checks on both versions.")
    paired = same_inputs(a, b)
    if paired:
        check_same_inputs(a, b)
    elif pairwise is not None:
        raise EvaluateInputError("A pairwise judge needs a and b on the same inputs, and these differ.",
                                 "Run both versions on the same input table, or leave pairwise= out.")
    acceptance = acceptance if acceptance is not None else Acceptance()
    if not isinstance(acceptance, Acceptance):
        raise EvaluateInputError(f"acceptance is a {type(acceptance).__name__}, not Acceptance(...).",
                                 "Pass Acceptance(min_pass_rate=0.8, must_pass=[...], min_improvement=0.0).")
    notes: list[str] = []
    for name, table in (("a", a), ("b", b)):
        unchecked = int(table[checks_a].isna().any(axis=1).sum())
        if unchecked:
            notes.append(f"{unchecked} row(s) of {name} were not checked; they count as not passing.")
    passed_a = a[OVERALL].fillna(False).astype(bool).to_numpy(dtype=float)
    passed_b = b[OVERALL].fillna(False).astype(bool).to_numpy(dtype=float)
    rates_a, rates_b = pass_rates(a, checks_a), pass_rates(b, checks_a)
    by_check = pd.DataFrame({"check": checks_a, "a": rates_a.to_numpy(), "b": rates_b.to_numpy()})
    by_check["change"] = by_check["b"] - by_check["a"]
    overall_a, overall_b = float(passed_a.mean()), float(passed_b.mean())
    difference = overall_b - overall_a
    interval = _interval(passed_a, passed_b, seed, notes, paired)
    a_only, b_only, p_value = _test(passed_a, passed_b, paired, notes)
    criteria = _criteria(acceptance, rates_a, rates_b, overall_a, overall_b, checks_a)
    summary = _pairwise_summary(pairwise, len(a)) if pairwise is not None else None
    verdict, why = _verdict(criteria, overall_a, overall_b, interval)
    if summary is not None and summary.first_shown_won is not None and abs(summary.first_shown_won - 0.5) > 0.25:
        notes.append(f"The pairwise judge picked the text it saw first in {summary.first_shown_won:.0%} of decided "
                     "pairs: an order bias, so read its win rate with care.")
    return Comparison(len(a), checks_a, by_check, overall_a, overall_b, difference, interval, a_only, b_only,
                      p_value, criteria, verdict, why, acceptance, summary, CONFIDENCE, notes, paired, len(b),
                      _unchecked(a), _unchecked(b))


def _unchecked(results: pd.DataFrame) -> int:
    """How many texts run_checks called unchecked (its `outcome` column); 0 for tables without it."""
    if "outcome" not in results.columns:
        return 0
    return int(results["outcome"].astype(str).eq("unchecked").sum())


def _test(passed_a: np.ndarray, passed_b: np.ndarray, paired: bool, notes: list[str]) -> tuple[int, int, float]:
    """Texts that passed only with A, only with B, and the p-value: exact McNemar when paired, Fisher otherwise."""
    if not paired:
        notes.append(f"A and B are on different inputs ({len(passed_a)} and {len(passed_b)} texts), so they are "
                     "compared as two independent samples; the same inputs for both would give a sharper answer.")
        counts = [[int(passed_a.sum()), int(len(passed_a) - passed_a.sum())],
                  [int(passed_b.sum()), int(len(passed_b) - passed_b.sum())]]
        from scipy.stats import fisher_exact

        return 0, 0, float(fisher_exact(counts).pvalue)
    a_only = int(((passed_a == 1) & (passed_b == 0)).sum())
    b_only = int(((passed_a == 0) & (passed_b == 1)).sum())
    if a_only + b_only:
        from scipy.stats import binomtest

        return a_only, b_only, float(binomtest(b_only, a_only + b_only, 0.5).pvalue)
    notes.append("No text passed with one version and failed with the other, so the test has nothing to "
                 "weigh (p = 1).")
    return a_only, b_only, 1.0


def _verdict(criteria: list[Criterion], rate_a: float, rate_b: float,
             interval: tuple[float, float]) -> tuple[str, str]:
    """ship / iterate / stop and the reason, by the rule in compare()'s docstring."""
    difference = rate_b - rate_a
    significantly_worse = interval[1] < 0
    missed = "; ".join(_missed(c) for c in criteria if not c.met)
    gained = [c.criterion for c in criteria if c.met and c.a_met is False]
    rates = f"B passes {rate_b:.0%} of texts, A {rate_a:.0%} ({_points(difference)})"
    if rate_a == 0 and rate_b == 0 and missed:  # no winner among two versions that pass nothing
        return "stop", f"{rates}: neither version passes a single text, so neither is better; fix that first: {missed}."
    if not missed and not significantly_worse:
        return "ship", f"{rates}, and B meets every acceptance criterion."
    if significantly_worse:
        return "stop", (f"{rates}: B is worse than A beyond chance ({CONFIDENCE:.0%} interval {_points(interval[0])} "
                        f"to {_points(interval[1])}){'; it misses acceptance: ' + missed if missed else ''}.")
    if difference > 0 or gained:
        now = f"; it now meets {', '.join(gained)}" if gained else ""
        return "iterate", f"{rates}: B is better than A{now}, but it misses acceptance: {missed}."
    return "stop", f"{rates}: B is not better than A, and it misses acceptance: {missed}."


def _missed(criterion: Criterion) -> str:
    if criterion.a_met is None:  # the improvement over A, in points
        return f"{criterion.criterion} {_points(criterion.b)} where {_points(criterion.target)} is required"
    return f"{criterion.criterion} {criterion.b:.0%} where {criterion.target:.0%} is required"


__all__ = ["Acceptance", "Comparison", "Criterion", "PairwiseSummary", "check_columns", "check_same_inputs",
           "compare", "pass_rates", "same_inputs"]
