"""Compile a brief and one data record into chat messages (reading the record with marketlab.tables)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

# General table helpers, re-exported here for the code and notebooks that import them from this module.
from marketlab.tables import as_record, is_missing, split_list

from .errors import RecordError

if TYPE_CHECKING:  # for type hints only: schema imports this module, never the other way round
    from .schema import Brief

Message = dict[str, str]

# Known product columns and how to label them; unknown columns are shown with a title-cased name.
LABELS: dict[str, str] = {
    "name": "Name",
    "category": "Category",
    "price_usd": "Price",
    "weight_g": "Weight",
    "materials": "Materials",
    "key_specs": "Key specs",
    "certifications": "Certifications",
    "persona": "Written for",
    "channel_focus": "Channel",
}
# Not facts for the copy: identifiers, and not_true which gets its own "do not claim" list.
SKIPPED = {"sku", "not_true"}
LIST_FIELDS = {"materials", "key_specs", "certifications", "not_true"}


def _format_value(field: str, value: Any) -> str:
    if field == "price_usd":
        try:
            return f"${float(value):.2f}"
        except (TypeError, ValueError):
            return str(value)
    if field == "weight_g":
        try:
            return f"{float(value):g} g"
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def facts_block(record: Any) -> str:
    """The record's facts as a bulleted list, empty fields skipped and lists split."""
    row = as_record(record)
    lines: list[str] = []
    for field, value in row.items():
        if field in SKIPPED or str(field).startswith("_") or is_missing(value):
            continue
        label = LABELS.get(field, str(field).replace("_", " ").capitalize())
        if field in LIST_FIELDS:
            items = split_list(value)
            if not items:
                continue
            if field == "key_specs":
                lines.append(f"- {label}:")
                lines.extend(f"  - {item}" for item in items)
            else:
                lines.append(f"- {label}: {', '.join(items)}")
        else:
            lines.append(f"- {label}: {_format_value(field, value)}")
    return "\n".join(lines)


def do_not_claim_block(record: Any) -> str:
    """The record's not_true list as limits the copy must never contradict ('do not claim')."""
    items = split_list(as_record(record).get("not_true"))
    if not items:
        return ""
    return "Limits of this product. These are true: do not claim the opposite.\n" + "\n".join(
        f"- {item}" for item in items
    )


def system_prompt(brief: Brief) -> str:
    """The system message: the parts of the brief that shape every output."""
    out, aud, con = brief.output, brief.audience, brief.constraints
    parts = ["You are a careful copywriter.", f"Output: {out.format or 'marketing copy'}."]
    if brief.objective.statement:
        parts.append(f"Goal: {brief.objective.statement}")
    if aud.who:
        needs = f" They care about: {', '.join(aud.needs)}." if aud.needs else ""
        parts.append(f"Reader: {aud.who}.{needs}")
    if con.brand_voice:
        parts.append(f"Brand voice: {con.brand_voice}")
    if out.fields:
        parts.append(f"Include these parts: {', '.join(out.fields)}.")
    if out.max_words and out.min_words:
        parts.append(f"Length: {out.min_words} to {out.max_words} words.")
    elif out.max_words:
        parts.append(f"Length: at most {out.max_words} words.")
    parts.append("Use only the facts in the user's message. If a fact is not given, leave it out; never invent one.")
    if con.banned_claims:
        parts.append("Never claim: " + "; ".join(con.banned_claims) + ".")
    if con.legal:
        parts.append("Legal rules: " + "; ".join(con.legal) + ".")
    return "\n".join(parts)


def user_message(brief: Brief, record: Any) -> str:
    """The user message: one record's facts, its limits, then the task (last, where small models look)."""
    row = as_record(record)
    sections = ["Product facts:\n" + facts_block(row)]
    limits = do_not_claim_block(row)
    if limits:
        sections.append(limits)
    task = f"Write the {brief.output.format or 'copy'}"
    if not is_missing(row.get("name")):
        task += f" for the {str(row['name']).strip()}"
    if brief.output.max_words:
        task += f", at most {brief.output.max_words} words"
    sections.append(task + ", using only these facts.")
    return "\n\n".join(sections)


def _examples(examples: Iterable[Any] | None) -> list[tuple[Any, str]]:
    pairs: list[tuple[Any, str]] = []
    for example in examples or ():
        if isinstance(example, Mapping) and "record" in example:
            pairs.append((example["record"], str(example["output"])))
        elif isinstance(example, Sequence) and len(example) == 2:
            pairs.append((example[0], str(example[1])))
        else:
            raise RecordError(f"The few-shot example {str(example)[:60]!r} cannot be used: each example must be "
                              "{'record': ..., 'output': ...} or a (record, output) pair.",
                              "Write examples=[(record, 'the copy you want for it'), ...].")
    return pairs


def to_messages(brief: Brief, record: Any, examples: Iterable[Any] | None = None) -> list[Message]:
    """System prompt from the brief, optional few-shot pairs, then the record as the user message."""
    messages: list[Message] = [{"role": "system", "content": system_prompt(brief)}]
    for example_record, output in _examples(examples):
        messages.append({"role": "user", "content": user_message(brief, example_record)})
        messages.append({"role": "assistant", "content": output})
    messages.append({"role": "user", "content": user_message(brief, record)})
    return messages


__all__ = ["LABELS", "LIST_FIELDS", "Message", "SKIPPED", "as_record", "do_not_claim_block", "facts_block",
           "is_missing", "split_list", "system_prompt", "to_messages", "user_message"]
