"""Hidden tests for Lab 3: the learner's checks and evaluate.py on holdout texts, in the sandbox.

The holdout rated outputs (graders/holdout/rated_outputs.csv) are new texts with seeded defects
about another company's products. Only the texts go to the learner's side; the human labels and
every expected figure stay here. Nothing here depends on the judge model's quality.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from marketlab import data
from marketlab.checks import CheckResult, lab03
from marketlab.grading.notebook_values import grade_value, read_value, unreadable
from marketlab.grading.wire import RemoteError

HOLDOUT_DIR = Path(__file__).resolve().parent / "holdout"


def holdout_rated() -> pd.DataFrame:
    """The holdout texts with their human labels (labels never leave the grader)."""
    return data.load("rated_outputs", directory=HOLDOUT_DIR)


def holdout_products() -> pd.DataFrame:
    """The holdout catalogue the texts describe."""
    return data.load("products", directory=HOLDOUT_DIR)


def grade_labels(sub: Any) -> CheckResult:
    """The ten labels are complete (a judgement: any True/False answer counts)."""
    return grade_value(sub, "MY_LABELS", lab03.check_labels, "labels", "each of the ten texts has your label",
                       lab03.ten_texts(data.load("rated_outputs")))


def grade_policy(sub: Any) -> CheckResult:
    """The written tone policy has criteria someone could apply."""
    return grade_value(sub, "TONE_POLICY", lab03.check_policy, "policy", "your tone policy has 3 to 12 criteria")


def grade_checks(sub: Any) -> CheckResult:
    """The learner's checks, run in their kernel on holdout texts, judged here against the labels."""
    rated = holdout_rated()
    mapping = read_value(sub, "DEFECT_CHECKS")
    try:
        results = sub.function("my_evaluate")(lab03.outputs_only(rated), holdout_products())
    except RemoteError as err:
        return unreadable("checks", "your checks agree with the human labels on new texts", err)
    return lab03.check_checks(results, rated, mapping, strict=False, quiet=True)


def grade_ok_but_unfaithful(sub: Any) -> CheckResult:
    """ok_but_unfaithful on run tables it has not seen."""
    cases = []
    for run, checked, _expected in lab03.unfaithful_cases():
        run, checked = run.iloc[::-1].copy(), checked.iloc[::-1].copy()  # other order, same answer
        ok = run["status"] == "ok"
        cases.append((run, checked, float((~checked.loc[ok, "faithfulness"]).mean())))
    return lab03.check_ok_but_unfaithful(sub.function("ok_but_unfaithful"), cases, strict=False, quiet=True)


def grade_agreement(sub: Any) -> CheckResult:
    """agreement_and_kappa on holdout label pairs, within 0.01 of the reference computation."""
    cases = lab03.agreement_cases(holdout_rated(), seed=7) + lab03.agreement_cases(holdout_rated(), "repetition", 11)
    return lab03.check_agreement(sub.function("agreement_and_kappa"), cases, strict=False, quiet=True)


def grade_trust(sub: Any) -> CheckResult:
    """trust_judge on other numbers than the notebook's."""
    cases = ((0.95, 0.85, 0.70), (0.71, 0.35, 0.70), (0.90, 0.59, 0.50), (0.66, 0.62, 0.70), (0.81, 0.60, 0.80))
    return lab03.check_trust(sub.function("trust_judge"), cases, strict=False, quiet=True)


def grade_verdict(sub: Any) -> CheckResult:
    """verdict(a, b) on holdout v1/v2 results, against compare() with the learner's own ACCEPTANCE."""
    from marketlab import evaluate

    rated = holdout_rated()
    results = evaluate.run_checks(lab03.outputs_only(rated), holdout_products())
    acceptance = read_value(sub, "ACCEPTANCE")
    if isinstance(acceptance, RemoteError):
        return unreadable("verdict", "verdict(a, b) follows the numbers", acceptance)
    return lab03.check_verdict(sub.function("verdict"), acceptance, lab03.verdict_cases(results),
                               strict=False, quiet=True)


def grade_evaluator(sub: Any) -> CheckResult:
    """evaluate.py from the submission, in a fresh sandbox, on the holdout texts."""
    return lab03.check_evaluator(holdout_rated(), holdout_products(), sub.folder, harness=sub.harness,
                                 strict=False, quiet=True)


GRADERS = {"check-labels": grade_labels, "check-policy": grade_policy, "check-checks": grade_checks,
           "check-ok-but-unfaithful": grade_ok_but_unfaithful, "check-agreement": grade_agreement,
           "check-trust": grade_trust, "check-verdict": grade_verdict, "check-evaluator": grade_evaluator}
