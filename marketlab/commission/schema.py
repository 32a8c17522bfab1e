"""What the extractor fills in for each question: a one-sentence answer, typed facts and a quote.

Each question has its own small schema (the model answers one question at a time); a whole
proposal is a ProposalAnswers with one section per question. The same models describe the
course's reference extractions, so scoring rules run on either.
"""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

Frequency = Literal["continuous", "daily", "weekly", "fortnightly", "monthly", "quarterly", "yearly", "once",
                    "not stated"]
Coverage = Literal["specific", "vague", "none"]
FREQUENT = ("continuous", "daily", "weekly")  # often enough to catch a problem within a week or two
SCHEDULED = ("daily", "weekly", "fortnightly", "monthly", "quarterly", "yearly")  # a fixed calendar

_ANSWER = "the proposal's answer to this question in one plain sentence; 'not stated' if it does not answer"
_EVIDENCE = ("one sentence copied word for word from the proposal that supports the answer; "
             "empty if the proposal does not answer")


class Section(BaseModel):
    """The part every question shares: the answer in a sentence and the evidence quote."""

    model_config = ConfigDict(extra="forbid")

    answer: str = Field(description=_ANSWER)
    evidence: str = Field(description=_EVIDENCE)

    def facts(self) -> dict[str, object]:
        """The typed facts of this section (everything but the answer and the evidence)."""
        return {k: v for k, v in self.model_dump().items() if k not in ("answer", "evidence")}


class TrainingData(Section):
    """What data the system learns from or is given, and how fresh it is."""

    data_sources: list[str] = Field(description="each data source named, e.g. 'order lines from the warehouse'")
    history_window: str | None = Field(description="how much history is used, e.g. '24 months'; null if not said")
    refresh: Frequency = Field(description="how often the data is refreshed")
    exclusions: list[str] = Field(description="data deliberately left out, with the reason if given")


class Monitoring(Section):
    """How performance is watched after launch."""

    effectiveness_rates: list[str] = Field(
        description="rates that show whether it works for the business, e.g. 'share of recommendations "
                    "followed by an add-to-cart'")
    counts_only: list[str] = Field(description="measures reported as totals or counts, e.g. 'clicks', 'revenue'")
    service_metrics: list[str] = Field(description="technical measures such as uptime or response time")
    segments: list[str] = Field(description="groups the rates are split by, e.g. 'new and returning customers'")
    alert_thresholds: list[str] = Field(description="each alert level with its number, e.g. 'down 5 points'")
    reporting: Frequency = Field(description="how often the client sees the figures")


class RetrainingOwner(Section):
    """What makes the model get retrained, and who does it."""

    schedule: Frequency = Field(description="how often retraining is planned; 'continuous' if it 'learns by "
                                            "itself', 'once' if trained only at setup")
    trigger: str | None = Field(description="the event or threshold that starts a retrain outside the "
                                               "schedule; null if none")
    retrained_by: str | None = Field(description="the person or role who runs the retraining; null if none")
    approved_by: str | None = Field(description="who on the client's side decides a new model goes live; "
                                                   "null if none")


class Integration(Section):
    """How the system connects to the client's tools."""

    crm: Coverage = Field(description="specific: it says how data flows to or from the CRM; vague: a connection "
                                      "is promised without saying which or how; none: not mentioned")
    marketing_automation: Coverage = Field(description="the email or marketing automation platform, rated the "
                                                       "same way")
    warehouse: Coverage = Field(description="the data warehouse, rated the same way")
    web: Coverage = Field(description="the website or web shop, rated the same way")
    systems_named: list[str] = Field(description="each system named, e.g. 'Salesforce', 'BigQuery'")
    fallback: str | None = Field(description="what happens when the service does not answer; null if not said")


class ProductionReferences(Section):
    """Evidence that the vendor runs systems like this one in production."""

    production_systems: list[str] = Field(
        description="each comparable AI system the vendor runs in production today, with the kind of client")
    scale: str | None = Field(description="the size of the largest one, e.g. '2 million sessions a week'")
    references_offered: bool = Field(description="true if the vendor offers reference calls or contacts")
    demos_only: bool = Field(description="true if the only evidence is demos, pilots, showcase stores or quotes")


class ProposalAnswers(BaseModel):
    """One proposal's answers to the five questions: the structure of a scorecard row."""

    model_config = ConfigDict(extra="forbid")

    training_data: TrainingData
    monitoring: Monitoring
    retraining_owner: RetrainingOwner
    integration: Integration
    production_references: ProductionReferences

    def section(self, question_id: str) -> Section:
        """The answers to one question."""
        from .questions import question

        return getattr(self, question(question_id).id)

    def table(self) -> pd.DataFrame:
        """One row per question: the answer, the typed facts and the evidence quote."""
        rows = [{"question": name, "answer": self.section(name).answer, "facts": self.section(name).facts(),
                 "evidence": self.section(name).evidence} for name in type(self).model_fields]
        return pd.DataFrame(rows)


SECTION_SCHEMAS: dict[str, type[Section]] = {
    name: field.annotation for name, field in ProposalAnswers.model_fields.items()  # type: ignore[misc]  # every field is a Section
}


def _kind(annotation: Any) -> str:
    if get_origin(annotation) is Literal:
        return "one of: " + ", ".join(map(str, get_args(annotation)))
    if annotation is bool:
        return "true or false"
    if get_origin(annotation) is list:
        return "list of text"
    if type(None) in get_args(annotation):
        return "text, or null"
    return "text"


def field_table(section: type[Section]) -> pd.DataFrame:
    """The fields of one question's schema, their kind and what goes in each: what the model is asked to fill."""
    return pd.DataFrame([{"field": name, "kind": _kind(info.annotation), "what goes in it": info.description}
                         for name, info in section.model_fields.items()])
