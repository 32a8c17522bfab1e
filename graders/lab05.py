"""Hidden tests for Lab 5: the learner's extractor messages, scoring rules and brief, on holdout proposals.

The two holdout proposals (graders/holdout/proposals/) come from other vendors, to another company.
Their text and their reference extractions go to the learner's side as inputs; the expert's scores
stay here, and so do the scripted model replies. Nothing here calls the built-in model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from marketlab import commission, data
from marketlab.checks import CheckResult, lab05
from marketlab.grading.notebook_values import grade_value, unreadable
from marketlab.grading.wire import RemoteError

HOLDOUT_DIR = Path(__file__).resolve().parent / "holdout"


def holdout_proposals() -> list[dict[str, Any]]:
    """The holdout proposals' ids, vendors and texts (never their expert scores)."""
    return [{k: p[k] for k in ("proposal_id", "vendor", "text")} for p in data.load_proposals(HOLDOUT_DIR)]


def holdout_extractions() -> dict[str, commission.ProposalAnswers]:
    """Reference extractions of the holdout proposals, made by hand."""
    return commission.load_extractions(HOLDOUT_DIR)


def holdout_expert() -> pd.DataFrame:
    """The expert's scores of the holdout proposals (they never leave the grader)."""
    return data.load("scorecard", directory=HOLDOUT_DIR)


def grade_hand_scores(sub: Any) -> CheckResult:
    """The five hand scores are complete (a judgement: any 0, 1 or 2 counts)."""
    return grade_value(sub, "MY_SCORES", lab05.check_hand_scores, "hand-scores",
                        "each of the five questions has your score")


def grade_extraction(sub: Any) -> CheckResult:
    """extraction_messages on the holdout proposals, run here through the extractor with scripted replies."""
    return lab05.check_extraction_messages(sub.function("extraction_messages"), holdout_proposals(),
                                           holdout_extractions(), strict=False, quiet=True)


def grade_scoring_rules(sub: Any) -> CheckResult:
    """The learner's rules on the holdout reference extractions, then on the lab's six, against the expert.

    The exercise is one line (when monitoring earns a 2); the two holdout proposals alone have too few
    monitoring answers to tell that line from the one given, so the lab's own proposals must pass too.
    Their extractions are already on the learner's side; the expert's scores stay here.
    """
    scorecard = sub.function("my_scorecard")
    on_holdout = lab05.check_scoring_rules(scorecard, holdout_extractions(), holdout_expert(),
                                           strict=False, quiet=True)
    if not on_holdout.passed:
        return on_holdout
    return lab05.check_scoring_rules(scorecard, commission.load_extractions(), data.load("scorecard"),
                                     strict=False, quiet=True)


def grade_commission_brief(sub: Any) -> CheckResult:
    """The commissioned brief, built from the learner's YAML in their kernel, reaches engineering spec."""
    try:
        info = sub.describe("commissioned", "brief")
    except RemoteError as err:
        return unreadable("commission-brief", "your commissioned brief reaches engineering spec", err)
    if not info.get("is_brief"):
        return unreadable("commission-brief", "your commissioned brief reaches engineering spec",
                        f"commissioned is a {info.get('type')}, not a Brief")
    return lab05.check_commission_brief(info["data"], strict=False, quiet=True)


def grade_vendor_questions(sub: Any) -> CheckResult:
    """The drafted vendor questions cover the five topics."""
    return grade_value(sub, "VENDOR_QUESTIONS", lab05.check_vendor_questions, "vendor-questions",
                        "your questions for the vendor")


def grade_artifacts(sub: Any) -> CheckResult:
    """scoring_rules.py and commission_brief.yaml from the submission, in a fresh sandbox, on holdout data."""
    return lab05.check_saved_artifacts(holdout_extractions(), holdout_expert(), sub.folder, harness=sub.harness,
                                       strict=False, quiet=True)


GRADERS = {"check-hand-scores": grade_hand_scores, "check-extraction": grade_extraction,
           "check-rules": grade_scoring_rules, "check-brief": grade_commission_brief,
           "check-questions": grade_vendor_questions, "check-artifacts": grade_artifacts}
