"""The five questions that separate production partners from demo builders, in plain English."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from marketlab.data import SCORECARD_QUESTIONS


@dataclass(frozen=True)
class Question:
    """One question to ask a vendor: its id (a scorecard column), wording, why it matters, what a 2 looks like."""

    id: str
    title: str
    wording: str
    why: str
    full_marks: str
    topic_words: tuple[str, ...]

    def topic_pattern(self) -> re.Pattern[str]:
        """A pattern that finds this question's topic in a text (used to check drafted vendor questions)."""
        return re.compile(r"\b(?:" + "|".join(self.topic_words) + r")", re.IGNORECASE)


QUESTIONS: tuple[Question, ...] = (
    Question(
        "training_data", "Training data and freshness",
        "What data is the system trained on or given, and how fresh is it?",
        "A model only knows the data it was built from: last year's orders recommend last year's range.",
        "names the data sources, the period of history used and how often the data is refreshed",
        ("data", "train", "fresh", "refresh", "source", "history", "histories")),
    Question(
        "monitoring", "Monitoring after launch",
        "How is performance watched after launch: which rates, how often, and what sets off an alert?",
        "Counts such as clicks rise with traffic and hide a decline; a falling rate is the early warning.",
        "reports effectiveness rates (not totals) on a fixed rhythm, with alert thresholds agreed in advance",
        ("monitor", "rate", "alert", "dashboard", "track", "measur", "report", "threshold", "kpi")),
    Question(
        "retraining_owner", "Retraining: trigger and owner",
        "What triggers retraining, and who owns it on their side and on ours?",
        "Without a trigger and a named owner, a model that degrades keeps running until somebody complains.",
        "a trigger with a threshold (not only a calendar), a named person who retrains and one who signs off",
        ("retrain", "re-train", "update the model", "owner", "owns", "responsib", "trigger", "who ")),
    Question(
        "integration", "Integration with our systems",
        "How does it connect to our CRM, marketing automation platform and data warehouse?",
        "A model that cannot reach the CRM or the email platform is a demo; its scores help nobody.",
        "names each system and says how data flows to and from it, with a fallback when the service fails",
        ("integrat", "connect", "crm", "salesforce", "hubspot", "warehouse", "automation", "email platform",
         "api", "sync", "braze", "marketo", "snowflake", "bigquery")),
    Question(
        "production_references", "Production references",
        "Who runs a system like this in production today, at what scale, and can we speak to them?",
        "A demo proves a vendor can build a demo; a system live for a year proves they can run one.",
        "at least two comparable systems in production, with their scale, and reference calls offered",
        ("reference", "production", "client", "customer", "case stud", "live", "deploy", "run this", "run a")),
)
QUESTION_IDS: tuple[str, ...] = SCORECARD_QUESTIONS  # declared once, in marketlab.data; QUESTIONS follow its order
BY_ID: dict[str, Question] = {q.id: q for q in QUESTIONS}
SCORES = {0: "not answered, or only claims", 1: "partly answered", 2: "specific and checkable"}


def question(question_id: str) -> Question:
    """The question with this id, or a clear error naming the five ids."""
    from .errors import CommissionError

    if question_id not in BY_ID:
        raise CommissionError(f"There is no question called {question_id!r}.",
                              f"Use one of: {', '.join(QUESTION_IDS)}.")
    return BY_ID[question_id]


def topics_covered(lines: Iterable[str]) -> dict[str, list[str]]:
    """For each question id, the lines (e.g. drafted vendor questions) that touch its topic; [] when none do."""
    kept = [str(line) for line in lines if str(line).strip()]
    return {q.id: [line for line in kept if q.topic_pattern().search(line)] for q in QUESTIONS}
