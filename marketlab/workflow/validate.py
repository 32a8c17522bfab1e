"""Read a model reply against the output schema and the rules a program can check.

The local model's JSON grammar ignores numeric minimum/maximum and no model reliably counts
words, so every reply is checked here, in Python, whatever the model promised.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from marketlab.evaluate.text import phrase_pattern, word_count

# A custom rule gets the parsed reply and the input record and returns a problem, or None when fine.
CustomRule = Callable[[BaseModel, Mapping[str, Any]], "str | None"]


@dataclass(frozen=True)
class Rules:
    """Rules every reply must meet beyond the schema: lengths, ranges, required text, banned words."""

    max_words: Mapping[str, int] = field(default_factory=dict)
    min_words: Mapping[str, int] = field(default_factory=dict)
    max_chars: Mapping[str, int] = field(default_factory=dict)
    ranges: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    banned_words: tuple[str, ...] = ()
    custom: tuple[CustomRule, ...] = ()

    def __post_init__(self) -> None:
        # Accept lists where tuples are expected: people write banned_words=["cheap", ...].
        object.__setattr__(self, "required", tuple(self.required))
        object.__setattr__(self, "banned_words", tuple(str(w) for w in self.banned_words))
        object.__setattr__(self, "custom", tuple(self.custom))

    @classmethod
    def from_brief(cls, brief: Any, field_name: str, **more: Any) -> Rules:
        """Word limits for one field taken from a brief's output contract (min_words, max_words)."""
        out = brief.output
        max_words = {field_name: out.max_words} if out.max_words else {}
        min_words = {field_name: out.min_words} if out.min_words else {}
        return cls(max_words=max_words, min_words=min_words, **more)

    def with_banned_words(self, words: Iterable[str]) -> Rules:
        """The same rules plus more banned words (e.g. brand_voice['banned_words'])."""
        merged = tuple(dict.fromkeys([*self.banned_words, *(str(w) for w in words)]))
        return Rules(self.max_words, self.min_words, self.max_chars, self.ranges, self.required, merged, self.custom)

    def fields(self) -> set[str]:
        """Every field name a rule refers to."""
        return {*self.max_words, *self.min_words, *self.max_chars, *self.ranges, *self.required}

    def problems(self, parsed: BaseModel, record: Mapping[str, Any] | None = None) -> list[str]:
        """Plain-language problems of one parsed reply; an empty list means every rule holds."""
        values = parsed.model_dump()
        found: list[str] = []
        for name in self.required:
            if _blank(values.get(name)):
                found.append(f"'{name}' is empty")
        for name, limit in self.max_words.items():
            words = _words(values.get(name))
            if words > limit:
                found.append(f"'{name}' has {words} words; the limit is {limit}")
        for name, limit in self.min_words.items():
            words = _words(values.get(name))
            if words < limit:
                found.append(f"'{name}' has {words} words; at least {limit} are needed")
        for name, limit in self.max_chars.items():
            chars = len(_text(values.get(name)))
            if chars > limit:
                found.append(f"'{name}' has {chars} characters; the limit is {limit}")
        for name, (low, high) in self.ranges.items():
            found += _range_problems(name, values.get(name), low, high)
        for word in self.banned_words:
            for name, text in _texts(values):
                pattern = _phrase_pattern(word)
                if pattern is not None and pattern.search(text):
                    found.append(f"'{name}' uses the banned word '{word}'")
        for rule in self.custom:
            problem = rule(parsed, record or {})
            if problem:
                found.append(str(problem))
        return found


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(_text(v) for v in value)
    return str(value)


def _words(value: Any) -> int:
    return word_count(_text(value))


@functools.lru_cache(maxsize=512)
def _phrase_pattern(word: str) -> re.Pattern[str] | None:
    """The banned-word match the evaluate checks use: whole words or phrases, any case."""
    return phrase_pattern([word])


def _texts(values: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, str]]:
    for name, value in values.items():
        label = f"{prefix}{name}"
        if isinstance(value, str):
            yield label, value
        elif isinstance(value, (list, tuple)):
            yield label, " ".join(_text(v) for v in value if not isinstance(v, dict))
        elif isinstance(value, dict):
            yield from _texts(value, f"{label}.")


def _range_problems(name: str, value: Any, low: float | None, high: float | None) -> list[str]:
    if value is None:
        return [f"'{name}' is missing; it must be a number"]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return [f"'{name}' is {value!r}, not a number"]
    if math.isnan(number):
        return [f"'{name}' is not a number"]
    if low is not None and number < low:
        return [f"'{name}' is {value}; it must be at least {low:g}"]
    if high is not None and number > high:
        return [f"'{name}' is {value}; it must be at most {high:g}"]
    return []


# -- reading a reply ----------------------------------------------------------------------------

@dataclass
class Verdict:
    """What one reply turned out to be: parsed and valid, or a kind of problem with the reasons."""

    parsed: BaseModel | None
    kind: str | None = None  # None when valid, else invalid_json, schema, truncated, rules or refused
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the reply can be used."""
        return self.kind is None

    def text(self) -> str:
        """The problems as one sentence."""
        return "; ".join(self.problems)


def read_reply(content: str | None, finish_reason: str | None, schema: type[BaseModel], rules: Rules | None,
               record: Mapping[str, Any] | None = None, refusal: str | None = None,
               max_tokens: int | None = None) -> Verdict:
    """Parse a reply the way the SDK's parse() does, then check the rules; never raises on bad replies."""
    if finish_reason == "length":
        limit = f" of {max_tokens} tokens" if max_tokens else ""
        return Verdict(None, "truncated", [f"the reply was cut off at the length limit{limit} before the JSON "
                                           "was complete"])
    if refusal or finish_reason == "content_filter":
        return Verdict(None, "refused", [f"the model refused: {str(refusal or 'content filter')[:200]}"])
    if not content or not content.strip():
        return Verdict(None, "invalid_json", ["the reply was empty"])
    try:
        parsed = schema.model_validate_json(content)
    except ValidationError as err:
        return _explain(err)
    problems = rules.problems(parsed, record) if rules else []
    return Verdict(parsed, "rules" if problems else None, problems)


def _explain(err: ValidationError) -> Verdict:
    """Plain words for a pydantic error, without quoting the reply itself."""
    problems: list[str] = []
    kind = "schema"
    for item in err.errors(include_url=False):
        where = ".".join(str(part) for part in item.get("loc", ()))
        ctx = item.get("ctx") or {}
        code = item.get("type", "")
        value = item.get("input")
        if code in ("json_invalid", "json_type"):
            kind = "invalid_json"
            problems.append("the reply is not valid JSON")
        elif code == "missing":
            problems.append(f"the field '{where}' is missing")
        elif code == "extra_forbidden":
            problems.append(f"the reply has a field '{where}' that the schema does not have")
        elif code in ("less_than_equal", "less_than", "greater_than_equal", "greater_than"):
            words = {"less_than_equal": "at most", "less_than": "less than",
                     "greater_than_equal": "at least", "greater_than": "more than"}[code]
            limit = next(iter(ctx.values()), "?")
            problems.append(f"'{where}' is {_short(value)}; it must be {words} {limit}")
        elif code == "string_too_long":
            problems.append(f"'{where}' has {len(str(value))} characters; the limit is {ctx.get('max_length')}")
        elif code == "string_too_short":
            problems.append(f"'{where}' has {len(str(value))} characters; at least {ctx.get('min_length')} "
                            "are needed")
        elif code == "too_long":
            problems.append(f"'{where}' has too many items; the limit is {ctx.get('max_length')}")
        elif code == "too_short":
            problems.append(f"'{where}' has too few items; at least {ctx.get('min_length')} are needed")
        elif code == "literal_error":
            problems.append(f"'{where}' is {_short(value)}; it must be one of {ctx.get('expected')}")
        else:
            problems.append(f"'{where or 'reply'}': {item.get('msg', 'invalid')}")
    return Verdict(None, kind, list(dict.fromkeys(problems)))


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def repair_messages(messages: list[dict[str, Any]], content: str | None, verdict: Verdict,
                    limit_chars: int = 2000) -> list[dict[str, Any]]:
    """The original messages, the rejected reply, and what was wrong with it: the repair request."""
    rejected = (content or "")[:limit_chars]
    feedback = ("Your reply could not be used: " + verdict.text() + ".\n"
                "Reply again with only the JSON object, fixed. Keep everything that was right.")
    if verdict.kind == "truncated":
        feedback += " Write less so the whole JSON object fits."
    return [*messages, {"role": "assistant", "content": rejected or "(empty)"}, {"role": "user", "content": feedback}]
