"""Checks for Lab 3 (is it any good?): labels, a tone policy, checks measured against people,
agreement and kappa, when to trust a judge, an A/B verdict, and the saved evaluate.py.

Every check judges plain data: a results table, numbers, text. In the notebook the data comes
from the learner's kernel; in grading the same functions judge what the learner's code returned
on holdout texts inside the sandbox, and the human labels never leave the grader.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..grading import wire
from ..grading.harness import Harness, LocalHarness
from ._report import CheckResult, describe_error, finish, saved_file_missing

EVALUATE_FILE = "evaluate.py"
CODE_DEFECTS = ("unsupported_claim", "banned_word", "over_length", "missing_required_fact", "repetition")
MIN_RECALL = 0.9
MIN_PRECISION = 0.8
TOLERANCE = 0.01
VERDICTS = ("ship", "iterate", "stop")
OUTPUT_COLUMNS = ("output_id", "sku", "channel", "prompt_version", "text")
MUST_PASS = ("faithfulness", "banned_words")


# -- 1. labelling ----------------------------------------------------------------------------

def ten_texts(rated: pd.DataFrame) -> pd.DataFrame:
    """The ten texts learners label: the same every time, clean and flawed ones mixed."""
    defects = [c for c in ("unsupported_claim", "banned_word", "over_length", "missing_required_fact",
                           "wrong_tone", "repetition") if c in rated.columns]
    flawed = rated[defects].any(axis=1)
    short = rated["text"].str.len() < 700
    clean = rated[~flawed & short].sample(5, random_state=3)
    bad = rated[flawed & short].sample(5, random_state=3)
    return pd.concat([clean, bad]).sample(frac=1, random_state=1)


def check_labels(labels: Any, ten: pd.DataFrame, *, strict: bool = True, quiet: bool = False) -> CheckResult:
    """Every one of the ten texts has a True (publish as is) or False (needs work) label."""
    result = CheckResult("labels", "each of the ten texts has your label: True (publish as is) or False")
    ids = [str(i) for i in ten["output_id"]]
    if not isinstance(labels, Mapping):
        result.fail(f"MY_LABELS is a {type(labels).__name__}, not a dictionary of text id -> True/False")
    else:
        missing = [i for i in ids if labels.get(i) is None]
        odd = [i for i in ids if labels.get(i) is not None and not isinstance(labels.get(i), bool)]
        extra = [str(k) for k in labels if str(k) not in ids]
        if missing:
            result.fail(f"{len(missing)} text(s) still have no label: {', '.join(missing[:4])}")
        if odd:
            result.fail(f"label(s) that are not True or False: {', '.join(odd[:4])} (write True or False, no quotes)")
        if extra:
            result.fail(f"id(s) that are not among the ten texts: {', '.join(extra[:4])}")
    result.hint = "Replace each None with True (you would publish it as it is) or False (it needs work)."
    return finish(result, strict=strict, quiet=quiet)


def policy_criteria(policy: Any) -> list[str]:
    """The criteria of a written policy: one per non-empty line, bullet marks removed."""
    if not isinstance(policy, str):
        return []
    lines = [line.strip().lstrip("-*•").strip() for line in policy.splitlines()]
    return [line for line in lines if line]


def check_policy(policy: Any, *, strict: bool = True, quiet: bool = False) -> CheckResult:
    """The tone policy has 3 to 12 criteria, each a short sentence a colleague could apply."""
    result = CheckResult("policy", "your tone policy has 3 to 12 criteria, each a short sentence someone could apply")
    criteria = policy_criteria(policy)
    if not isinstance(policy, str):
        result.fail(f"TONE_POLICY is a {type(policy).__name__}, not text")
    elif len(criteria) < 3:
        result.fail(f"it has {len(criteria)} criteria; write at least 3, one per line")
    elif len(criteria) > 12:
        result.fail(f"it has {len(criteria)} criteria; keep to 12 at most, so a judge (or a person) can apply all")
    vague = [c for c in criteria if len(c.split()) < 4]
    if vague:
        result.fail(f"criteria too short to apply: {', '.join(repr(c) for c in vague[:3])} (say what passes or fails)")
    long = [c for c in criteria if len(c) > 240]
    if long:
        result.fail(f"{len(long)} criterion/criteria over 240 characters; split them")
    result.hint = ("One line per criterion, e.g. '- Fails if it uses ALL CAPS or more than one exclamation mark.' "
                   "Name what fails, not only what you like.")
    return finish(result, strict=strict, quiet=quiet)


# -- 2. checks against people ----------------------------------------------------------------

def quality_problems(results: Any, labels: pd.DataFrame, mapping: Any) -> tuple[list[str], pd.DataFrame | None]:
    """Problems of a results table against human labels (recall and precision per defect kind)."""
    from marketlab import evaluate

    if not isinstance(results, pd.DataFrame):
        return [f"the result is a {type(results).__name__}, not a table"], None
    if len(results) != len(labels):
        return [f"{len(labels)} texts went in, {len(results)} rows came back"], None
    if not isinstance(mapping, Mapping):
        return [f"DEFECT_CHECKS is a {type(mapping).__name__}, not a dictionary of defect -> check name"], None
    problems = []
    unmapped = [d for d in CODE_DEFECTS if d not in mapping]
    if unmapped:
        problems.append(f"no check named for: {', '.join(unmapped)}")
    absent = sorted({str(v) for d, v in mapping.items() if d in CODE_DEFECTS and str(v) not in results.columns})
    if absent:
        problems.append(f"DEFECT_CHECKS names check(s) with no column in the results: {', '.join(absent)}")
    usable = {d: str(v) for d, v in mapping.items() if d in labels.columns and str(v) in results.columns}
    if not usable:
        return problems, None
    frame = results.reset_index(drop=True)
    for column in usable.values():
        if not pd.api.types.is_bool_dtype(frame[column]):
            problems.append(f"column '{column}' holds {frame[column].dtype} values, not True/False")
            return problems, None
    quality = evaluate.check_quality(frame, labels.reset_index(drop=True), usable)
    for row in quality.itertuples():
        if row.defect not in CODE_DEFECTS:
            continue
        if _below(row.recall, MIN_RECALL) or _below(row.precision, MIN_PRECISION):
            problems.append(f"{row.defect} (check '{row.check}'): recall {_pct(row.recall)}, precision "
                            f"{_pct(row.precision)}; needs at least {_pct(MIN_RECALL)} and {_pct(MIN_PRECISION)}")
    return problems, quality


def _below(value: Any, floor: float) -> bool:
    return not isinstance(value, (int, float)) or math.isnan(value) or value < floor


def _pct(value: Any) -> str:
    return "n/a" if not isinstance(value, (int, float)) or math.isnan(value) else f"{value:.0%}"


def plain(value: Any, width: int = 60) -> str:
    """A learner's value as they would write it: 0.6, not np.float64(0.6); True, not np.True_; text quoted."""
    if hasattr(value, "item") and type(value).__module__ == "numpy" and getattr(value, "ndim", 0) == 0:
        value = value.item()  # a numpy number or bool as the Python one
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        return f"{value:.4g}"
    if isinstance(value, (tuple, list)) and len(value) <= 4:
        inner = ", ".join(plain(v, width) for v in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def check_checks(results: Any, labels: pd.DataFrame, mapping: Any, *, strict: bool = True,
                 quiet: bool = False) -> CheckResult:
    """Each defect kind code can catch has a check that finds 90% of it, and 80% of what it flags is real."""
    result = CheckResult("checks", f"each defect code can catch has a check with recall >= {MIN_RECALL:.0%} and "
                                   f"precision >= {MIN_PRECISION:.0%} against the human labels")
    problems, _quality = quality_problems(results, labels, mapping)
    for problem in problems:
        result.fail(problem)
    result.hint = ("Add one check per defect kind to CHECKS (length, banned_words, required_facts, faithfulness, "
                   "repetition) and name it in DEFECT_CHECKS; read the rows it misses in the table below.")
    return finish(result, strict=strict, quiet=quiet)


# -- 3. status is not quality ----------------------------------------------------------------

def unfaithful_cases() -> list[tuple[pd.DataFrame, pd.DataFrame, float]]:
    """Small run tables and check tables with the share of ok rows that fail faithfulness."""
    cases = []
    for statuses, faithful in ((["ok", "ok", "repaired", "failed", "ok"], [True, False, False, True, False]),
                               (["ok", "ok", "ok", "ok"], [True, True, True, True]),
                               (["repaired", "ok", "skipped_budget", "ok", "ok", "ok"],
                                [False, False, True, True, True, False])):
        index = pd.RangeIndex(10, 10 + len(statuses))
        run = pd.DataFrame({"sku": [f"SKU-{i}" for i in index], "status": statuses}, index=index)
        checked = pd.DataFrame({"sku": run["sku"], "faithfulness": faithful}, index=index)
        ok = run["status"] == "ok"
        cases.append((run, checked, float((~checked.loc[ok, "faithfulness"]).mean())))
    return cases


def check_ok_but_unfaithful(fn: Callable[..., Any], cases: Sequence[tuple[pd.DataFrame, pd.DataFrame, float]]
                            | None = None, *, strict: bool = True, quiet: bool = False) -> CheckResult:
    """ok_but_unfaithful(run, checked) gives the share of rows with status ok that fail faithfulness."""
    result = CheckResult("ok-but-unfaithful", "ok_but_unfaithful gives the share of 'ok' rows that fail faithfulness")
    for run, checked, expected in cases or unfaithful_cases():
        try:
            got = fn(run, checked)
        except Exception as err:  # noqa: BLE001 - the learner's function may raise anything
            result.fail(f"it stopped with {describe_error(err)}")
            break
        if not wire.finite(got) or abs(float(got) - expected) > 1e-6:
            result.fail(f"on a run with {int((run['status'] == 'ok').sum())} ok rows it gave {plain(got)}, "
                        f"expected {expected:.3f}")
            break
    result.hint = ("A share of the ok rows: in the share line, divide by the number of ok rows, ok.sum(), not by "
                   "every row of the run (rows that were repaired or failed do not count).")
    return finish(result, strict=strict, quiet=quiet)


# -- 4. agreement, kappa and trust -----------------------------------------------------------

def reference_agreement(predicted: Sequence[Any], human: Sequence[Any]) -> tuple[float, float]:
    """Percent agreement and Cohen's kappa, as the lab defines them (scikit-learn's kappa)."""
    from sklearn.metrics import cohen_kappa_score

    a, b = list(predicted), list(human)
    agreement = sum(x == y for x, y in zip(a, b)) / len(a)
    kappa = float(cohen_kappa_score(b, a)) if len(set(a) | set(b)) > 1 else 0.0
    return float(agreement), 0.0 if math.isnan(kappa) else kappa


def agreement_cases(labels: pd.DataFrame, column: str = "wrong_tone", seed: int = 0) -> list[tuple[list, list]]:
    """(predicted, human) label pairs: a noisy judge, a judge that always says no defect, category labels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    human = [bool(v) for v in labels[column]]
    noisy = [(not h) if rng.random() < 0.25 else h for h in human]
    always = [False] * len(human)
    ratings = [int(v) for v in labels["human_rating"]] if "human_rating" in labels.columns else []
    shifted = [min(5, max(1, r + int(rng.integers(-1, 2)))) for r in ratings]
    cases: list[tuple[list[Any], list[Any]]] = [(noisy, human), (always, human)]  # yes/no labels, then ratings
    if ratings:
        cases.append((shifted, ratings))
    return cases


def check_agreement(fn: Callable[..., Any], cases: Sequence[tuple[Sequence[Any], Sequence[Any]]], *,
                    strict: bool = True, quiet: bool = False) -> CheckResult:
    """agreement_and_kappa(predicted, human) returns percent agreement and Cohen's kappa, within 0.01."""
    result = CheckResult("agreement", "agreement_and_kappa returns (agreement, kappa) within 0.01 of scikit-learn's")
    for predicted, human in cases:
        expected = reference_agreement(predicted, human)
        try:
            got = fn(list(predicted), list(human))
        except Exception as err:  # noqa: BLE001
            result.fail(f"it stopped with {describe_error(err)}")
            break
        if not isinstance(got, (list, tuple)) or len(got) != 2 or not all(wire.finite(v) for v in got):
            result.fail(f"it returned {plain(got)}; return two numbers: agreement, kappa")
            break
        names = ("agreement", "kappa")
        wrong = [f"{n} {float(g):.3f} (expected {e:.3f})" for n, g, e in zip(names, got, expected)
                 if abs(float(g) - e) > TOLERANCE]
        if wrong:
            result.fail(f"on {len(human)} labels: " + ", ".join(wrong))
            break
    result.hint = ("agreement is a share from 0 to 1, not a count: divide sum(same) by len(same). Keep the kappa "
                   "line, cohen_kappa_score(human, predicted), and return both: return agreement, kappa")
    return finish(result, strict=strict, quiet=quiet)


def reference_trust(agreement: float, kappa: float, baseline_agreement: float) -> bool:
    """The lab's rule: trust a judge only if it beats the best baseline and kappa is at least 0.6."""
    return agreement > baseline_agreement and kappa >= 0.6


# (0.80, 0.60, 0.70): kappa exactly at the rule's 0.6 is trusted, so `kappa > 0.6` does not pass.
TRUST_CASES = ((0.92, 0.78, 0.60), (0.70, 0.20, 0.72), (0.86, 0.52, 0.60), (0.80, 0.66, 0.82),
               (0.75, 0.61, 0.55), (0.65, 0.0, 0.65), (0.80, 0.60, 0.70))


def check_trust(fn: Callable[..., Any], cases: Sequence[tuple[float, float, float]] = TRUST_CASES, *,
                strict: bool = True, quiet: bool = False) -> CheckResult:
    """trust_judge(agreement, kappa, baseline_agreement) says yes only when the numbers earn it."""
    result = CheckResult("trust", "trust_judge trusts a judge only if it beats the best baseline and kappa >= 0.6")
    for agreement, kappa, baseline in cases:
        expected = reference_trust(agreement, kappa, baseline)
        try:
            got = fn(agreement, kappa, baseline)
        except Exception as err:  # noqa: BLE001
            result.fail(f"it stopped with {describe_error(err)}")
            break
        if not isinstance(got, bool) or got != expected:
            result.fail(f"agreement {agreement:.0%}, kappa {kappa:.2f}, best baseline {baseline:.0%}: it said "
                        f"{plain(got)}, the rule says {expected}")
            break
    result.hint = "return agreement > baseline_agreement and kappa >= 0.6"
    return finish(result, strict=strict, quiet=quiet)


def trust_line(rule_says: Any, calibration: Any) -> str:
    """What the lab prints after the trust rule: the rule's answer only when the sample can decide it. With too few
    answered texts, or texts the judge failed on, it says so and never says True."""
    numbers = (f"agreement {calibration.agreement:.0%}, kappa {calibration.kappa:.2f}, best baseline "
               f"{max(b.agreement for b in calibration.baselines.values()):.0%}, on {calibration.n} texts")
    problems = list(getattr(calibration, "evidence_problems", []))
    if problems:
        return (f"Trust this judge? Not yet: {'; and '.join(problems)}. Your rule on these numbers alone would say "
                f"{plain(rule_says)} ({numbers}), but they cannot decide it.")
    return f"Trust this judge? {plain(rule_says)} ({numbers})"


# -- 5. A/B verdict --------------------------------------------------------------------------

def acceptance_problems(acceptance: Any) -> list[str]:
    """What is wrong with ACCEPTANCE (an Acceptance, or its data): the brief's criteria written as numbers."""
    if hasattr(acceptance, "model_dump") and not isinstance(acceptance, type):
        acceptance = acceptance.model_dump()
    if not isinstance(acceptance, Mapping):
        return [f"ACCEPTANCE is a {type(acceptance).__name__}, not an Acceptance(...)"]
    problems = []
    rate = acceptance.get("min_pass_rate")
    if rate is None or not wire.finite(rate) or not 0.5 <= float(rate) <= 1:
        problems.append(f"min_pass_rate is {plain(rate)}; write the share of texts that must pass every check, "
                        "between 0.5 and 1")
    must = [str(m) for m in acceptance.get("must_pass") or []]
    missing = [m for m in MUST_PASS if m not in must]
    if missing:
        problems.append(f"must_pass leaves out {', '.join(missing)}: the brief allows 0 banned words or "
                        "unsupported claims")
    return problems


def verdict_cases(results: pd.DataFrame) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """(a, b) pairs of results tables: v1 against v2, v2 against v1, v2 against itself, and v1 against
    the v2 texts that passed every check (a version that meets any sensible acceptance criteria)."""
    if "prompt_version" not in results.columns or "passed" not in results.columns:
        return []
    v1 = results[results["prompt_version"] == "v1"].reset_index(drop=True)
    v2 = results[results["prompt_version"] == "v2"].reset_index(drop=True)
    clean = v2[v2["passed"].fillna(False).astype(bool)].reset_index(drop=True)
    return [(v1, v2), (v2, v1), (v2, v2.copy())] + ([(v1, clean)] if len(clean) else [])


def check_verdict(fn: Callable[..., Any], acceptance: Any, cases: Sequence[tuple[pd.DataFrame, pd.DataFrame]], *,
                  strict: bool = True, quiet: bool = False) -> CheckResult:
    """ACCEPTANCE holds the brief's criteria, and verdict(a, b) says what compare() says from the numbers."""
    from marketlab import evaluate

    result = CheckResult("verdict", "ACCEPTANCE writes the brief's criteria as numbers, and verdict(a, b) follows "
                                    "the numbers: ship, iterate or stop")
    problems = acceptance_problems(acceptance)
    for problem in problems:
        result.fail(problem)
    if not problems:
        chosen = evaluate.Acceptance.model_validate(
            acceptance.model_dump() if hasattr(acceptance, "model_dump") else dict(acceptance))
        for a, b in cases:
            expected = evaluate.compare(a, b, chosen).verdict
            try:
                got = fn(a, b)
            except Exception as err:  # noqa: BLE001
                result.fail(f"verdict stopped with {describe_error(err)}")
                break
            if got not in VERDICTS:
                result.fail(f"verdict returned {plain(got, 40)}; return 'ship', 'iterate' or 'stop'")
                break
            if got != expected:
                result.fail(f"comparing {len(a)} texts with {len(b)} texts it said {plain(got, 40)}; the numbers "
                            f"say {expected!r}")
                break
    result.hint = ("Change the ACCEPTANCE line to the brief's bar: min_pass_rate is the share that must pass every "
                   "check (0.9 for 90%), must_pass the check names no text may fail. Keep verdict as it is: it "
                   "returns compare(a_results, b_results, ACCEPTANCE).verdict.")
    return finish(result, strict=strict, quiet=quiet)


# -- 6. the saved evaluate.py ----------------------------------------------------------------

def outputs_only(rated: pd.DataFrame) -> pd.DataFrame:
    """The columns an evaluator may see: never the human labels."""
    return rated[[c for c in OUTPUT_COLUMNS if c in rated.columns]].copy()


def check_evaluator(rated: pd.DataFrame, products: pd.DataFrame, here: str | Path | None = None, *,
                    harness: Harness | None = None, strict: bool = True, quiet: bool = False) -> CheckResult:
    """evaluate.py, imported in a fresh Python: evaluate(outputs, products) gives one row per text, a column
    per check and a reason, good enough against the human labels; verdict and ACCEPTANCE are in it."""
    result = CheckResult("evaluator", f"evaluate.py runs in a fresh Python on {len(rated)} texts: one row per text, "
                                      "a column per check, a reason, and checks that agree with people")
    folder = Path(here or Path.cwd())
    harness = harness or LocalHarness()
    if saved_file_missing(result, folder, EVALUATE_FILE):
        return finish(result, strict=strict, quiet=quiet)
    with harness.module(folder, EVALUATE_FILE) as served:
        try:
            table = served.request({"op": "call", "name": "evaluate", "args": [outputs_only(rated), products]})
            mapping = served.request({"op": "describe", "name": "DEFECT_CHECKS", "kind": "value"})
            acceptance = served.request({"op": "describe", "name": "ACCEPTANCE", "kind": "value"})
        except (wire.RemoteError, wire.WireError) as err:
            result.fail(f"evaluate.py could not run on its own: {describe_error(err)}")
            result.hint = "Save it again with the save cell; keep CHECKS to marketlab's checks and make_check."
            return finish(result, strict=strict, quiet=quiet)
        if isinstance(table, pd.DataFrame) and "reason" not in table.columns:
            result.fail("the table has no 'reason' column")
        for problem in quality_problems(table, rated, mapping)[0]:
            result.fail(problem)
        for problem in acceptance_problems(acceptance):
            result.fail(f"saved {problem}")
        if result.passed and isinstance(table, pd.DataFrame):
            verdicts = verdict_cases(table.assign(prompt_version=list(rated["prompt_version"])))
            remote = _ServedFunction(served, "verdict")
            verdict = check_verdict(remote, acceptance, verdicts, strict=False, quiet=True)
            for problem in verdict.problems:
                result.fail(f"saved verdict: {problem}")
    if not result.passed:
        result.hint = "Pass the checks above, then run the save cell again."
    return finish(result, strict=strict, quiet=quiet)


class _ServedFunction:
    """A function of a served module, called with data in and data out."""

    def __init__(self, served: Any, name: str) -> None:
        self._served, self.__name__ = served, name

    def __call__(self, *args: Any) -> Any:
        return self._served.request({"op": "call", "name": self.__name__, "args": list(args)})
