"""Compile a brief and one data record into chat messages."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

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


def is_missing(value: Any) -> bool:
    """True for None, NaN, pandas NA and blank text: an optional field left empty."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str):
        return not value.strip() or value.strip().lower() in {"nan", "none", "null"}
    try:
        import pandas as pd

        return bool(pd.isna(value)) if pd.api.types.is_scalar(value) else False
    except ImportError:  # pragma: no cover - pandas is a dependency
        return False


def split_list(value: Any) -> list[str]:
    """Items of a semicolon-separated field (or a list), blanks dropped."""
    if is_missing(value):
        return []
    items = value if isinstance(value, (list, tuple)) else str(value).split(";")
    return [str(item).strip() for item in items if not is_missing(item)]


def as_record(record: Any) -> dict[str, Any]:
    """A plain dict from a dict, a pandas Series or a namedtuple-like row."""
    if isinstance(record, Mapping):
        return dict(record)
    if hasattr(record, "to_dict"):
        return dict(record.to_dict())
    if hasattr(record, "_asdict"):
        return dict(record._asdict())
    raise TypeError(f"a record must be a dict or a pandas row, not {type(record).__name__}")


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
            raise TypeError("each example must be {'record': ..., 'output': ...} or a (record, output) pair")
    return pairs


def to_messages(brief: Brief, record: Any, examples: Iterable[Any] | None = None) -> list[Message]:
    """System prompt from the brief, optional few-shot pairs, then the record as the user message."""
    messages: list[Message] = [{"role": "system", "content": system_prompt(brief)}]
    for example_record, output in _examples(examples):
        messages.append({"role": "user", "content": user_message(brief, example_record)})
        messages.append({"role": "assistant", "content": output})
    messages.append({"role": "user", "content": user_message(brief, record)})
    return messages
