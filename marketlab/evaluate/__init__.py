"""marketlab.evaluate: is model-written copy any good? Checks, faithfulness to the facts, a rubric judge,
calibration against people and an A/B verdict.

    from marketlab import data, evaluate
    results = evaluate.run_checks(outputs, data.load("products"))        # a column per check, a reason
    evaluate.check_quality(results, labels)                              # recall and precision per defect
    evaluate.against_claim_labels(texts, products, evaluate.faithfulness())  # caught, missed, unchecked per text
    verdicts = evaluate.judge(outputs, evaluate.TONE_RUBRIC, client)      # through the runner: cached, budgeted
    evaluate.calibrate(verdicts["judge_pass"], ~labels["wrong_tone"])     # agreement, kappa, baselines
    evaluate.compare(results_v1, results_v2, evaluate.Acceptance(min_pass_rate=0.9)).verdict
    evaluate.plot(results, calibration)                                  # pass rates and the confusion table

The same checks run inside a workflow: ``run_batch(..., checks=[evaluate.faithfulness()])``. faithfulness()
reads the course's outdoor vocabulary pack; on another catalogue pass faithfulness(vocabulary=None) (general
claim forms only) or your own pack. A text in which it recognised no claim is "unchecked", never "passed".
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .artifact import load_evaluator, save_evaluator
from .calibrate import Baseline, Calibration, calibrate
from .checks import (
    Check,
    Finding,
    banned_words,
    disclaimers,
    hype,
    length,
    make_check,
    repetition,
    required_facts,
    valid_json,
)
from .compare import Acceptance, Comparison, compare
from .errors import EvaluateInputError
from .facts import Claim, claims, faithfulness
from .plots import plot
from .quality import against_claim_labels, check_quality
from .suite import DEFAULT_CHECKS, DEFECT_CHECKS, default_checks, run_checks
from .vocabulary import VocabularyError, VocabularyPack, load_vocabulary
from .voice import BrandVoice

# The parts that call a model run through marketlab.workflow, which itself uses the checks above: they
# load on first use, so the checks (and the workflow) import without them and no import waits in a function.
# TONE_RUBRIC reads brand_voice.yaml, so it too is built on first use rather than at import.
# (The judge lives in rubric.py, so no submodule is named like a function here.)
_ON_FIRST_USE = {
    "JudgeVerdict": "rubric", "Rubric": "rubric", "judge": "rubric", "pairwise": "rubric", "tone_rubric": "rubric",
    "TONE_RUBRIC": "rubric", "verifier_agreement": "verify", "verify_claims": "verify",
}

if TYPE_CHECKING:
    from .rubric import TONE_RUBRIC, JudgeVerdict, Rubric, judge, pairwise, tone_rubric
    from .verify import verifier_agreement, verify_claims


def __getattr__(name: str) -> Any:
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    if name != "TONE_RUBRIC":  # TONE_RUBRIC stays the rubric module's own, built there on first use
        globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ON_FIRST_USE))


__all__ = [
    "against_claim_labels", "Acceptance", "Baseline", "BrandVoice", "Calibration", "Check", "Claim", "Comparison",
    "DEFAULT_CHECKS",
    "DEFECT_CHECKS", "EvaluateInputError", "Finding", "JudgeVerdict", "Rubric", "TONE_RUBRIC", "banned_words",
    "calibrate", "check_quality", "claims", "compare", "default_checks", "disclaimers", "faithfulness", "hype",
    "judge", "length", "load_evaluator", "make_check", "pairwise", "plot", "repetition", "required_facts",
    "load_vocabulary", "run_checks", "verifier_agreement", "verify_claims", "save_evaluator", "tone_rubric",
    "valid_json", "VocabularyError",
    "VocabularyPack",
]
