"""The model reads each proposal and fills in the scorecard's structure, one question at a time.

Each question is one run of marketlab.workflow.run_batch over the proposals, with that question's
schema, so every answer is validated, repaired once, cached, budgeted and retried like any workflow.
The evidence quote of every answer is then looked up in the proposal (marketlab.commission.evidence).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import openai
import pandas as pd

from .errors import CommissionError
from .evidence import verify_quote
from .proposals import proposal_frame, question_rows
from .questions import QUESTION_IDS, question
from .schema import SECTION_SCHEMAS, ProposalAnswers, Section

EXTRACTION_RULES = """You read proposals from AI vendors for a marketing team. You answer one question about one \
proposal.
- Use only what the proposal says. Never add facts, numbers or names it does not contain.
- Evidence: copy one sentence from the proposal exactly, word for word, inside the evidence field.
- If the proposal does not answer the question, write "not stated" as the answer, leave the evidence empty, \
leave lists empty and use null or "not stated" for the other fields.
- A promise without a name, a number or a way it works ("plugs into everything") is vague, not specific."""

RESULT_COLUMNS = ("proposal_id", "vendor", "question", "status", "answer", "evidence", "evidence_check",
                  "verified", "facts", "error")
# The built-in model reads a whole proposal per request, so one answer can take a minute or more on a busy
# laptop; a short time limit would only add retries behind a request the server is still answering.
RUN_DEFAULTS = {"workers": 1, "max_tokens": 300, "request_timeout": 240.0, "progress": False, "show_summary": True}

Builder = Callable[[dict[str, Any]], list[dict[str, str]]]


def extraction_messages(record: Mapping[str, Any]) -> list[dict[str, str]]:
    """The course's messages for one proposal and one question: the rules, then the question and the proposal."""
    return [
        {"role": "system", "content": EXTRACTION_RULES},
        {"role": "user", "content": f"Question: {record['question_text']}\n\n"
                                    f"Proposal from {record['vendor']}:\n\n{record['text']}"},
    ]


def extract(proposals: Any, client: openai.OpenAI, model: str | None = None, *,
            build_messages: Builder | None = None, questions: Iterable[str] = QUESTION_IDS,
            **run_options: Any) -> pd.DataFrame:
    """Extract every proposal's answers to the questions: one row per proposal and question, quotes verified.

    `run_options` go to run_batch (e.g. max_tokens=200, token_budget=20_000, cache=False); by default
    one row is sent at a time with room for a slow model, and a single summary is printed at the end.
    """
    from marketlab.workflow import run_batch, summarize

    chosen = [question(q).id for q in questions]
    if not chosen:
        raise CommissionError("No questions were chosen.", f"Leave questions= out, or pick from {QUESTION_IDS}.")
    frame = proposal_frame(proposals)
    builder = build_messages or extraction_messages
    options = {**RUN_DEFAULTS, **run_options}
    show = options.pop("show_summary")
    runs = []
    for question_id in chosen:
        rows = question_rows(frame, question_id)
        out = run_batch(rows, builder, SECTION_SCHEMAS[question_id], client, model, show_summary=False,
                        include=["proposal_id", "vendor", "question"], **options)
        runs.append(_tidy(out, SECTION_SCHEMAS[question_id], frame))
    table = pd.concat(runs, ignore_index=True)
    if show:
        print(summarize(table))
        print(evidence_summary(table))
    return table


def _tidy(out: pd.DataFrame, schema: type[Section], proposals: pd.DataFrame) -> pd.DataFrame:
    """One question's run output in the scorecard's shape: facts in one column, evidence checked."""
    from marketlab.workflow import META_COLUMNS

    texts = dict(zip(proposals["proposal_id"], proposals["text"]))
    fact_names = [name for name in schema.model_fields if name not in ("answer", "evidence")]
    usable = out["status"].isin(["ok", "repaired"])
    rows = []
    for is_usable, (_, row) in zip(usable, out.iterrows()):
        quote = row.get("evidence") if is_usable else None
        found = verify_quote(quote, texts[row["proposal_id"]]) if is_usable else None
        rows.append({
            "proposal_id": row["proposal_id"], "vendor": row["vendor"], "question": row["question"],
            "status": row["status"], "answer": row.get("answer") if is_usable else None, "evidence": quote,
            "evidence_check": found.status if found else "no answer",
            "verified": bool(found and found.verified),
            "facts": {name: _plain(row.get(name)) for name in fact_names} if is_usable else None,
            "error": row["error"],
        })
    tidy = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    for column in META_COLUMNS:
        if column not in tidy.columns:
            tidy[column] = out[column].to_numpy()
    return tidy


def _plain(value: Any) -> Any:
    """A cell value as the model gave it: the runner's table turns a null into NaN in mixed columns."""
    return None if isinstance(value, float) and value != value else value


def evidence_summary(table: pd.DataFrame) -> str:
    """One line: how many answers came back and how many of their quotes were found in the proposal."""
    answered = table[table["status"].isin(["ok", "repaired"])]
    counts = answered["evidence_check"].value_counts()
    parts = ", ".join(f"{int(counts.get(k, 0))} {k}" for k in ("exact", "close", "not found", "too short",
                                                              "none given"))
    return (f"Evidence: {int(answered['verified'].sum())} of {len(answered)} answers have a quote found in the "
            f"proposal ({parts}).")


def to_answers(table: pd.DataFrame) -> dict[str, ProposalAnswers]:
    """ProposalAnswers for each proposal whose five answers all came back (others are left out)."""
    missing = [c for c in ("proposal_id", "question", "status", "answer", "evidence", "facts") if c not in table]
    if missing:
        raise CommissionError(f"This table is not an extraction: columns {missing} are missing.",
                              "Pass the table that commission.extract returned.")
    out: dict[str, ProposalAnswers] = {}
    for proposal_id, rows in table.groupby("proposal_id", sort=False):
        usable = rows[rows["status"].isin(["ok", "repaired"])]
        if set(usable["question"]) != set(QUESTION_IDS):
            continue
        sections = {row.question: {"answer": row.answer, "evidence": row.evidence, **(row.facts or {})}
                    for row in usable.itertuples()}
        out[str(proposal_id)] = ProposalAnswers.model_validate(sections)
    return out
