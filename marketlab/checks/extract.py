"""Plain-data descriptions of a learner's objects, made where the objects live.

A check judges these descriptions, never the objects: in the notebook they are made in the
learner's kernel next to the check; in grading they are made inside the sandbox and judged
outside it. The same functions serve both, so a check has one implementation.
"""

from __future__ import annotations

from typing import Any


def schema_facts(schema: Any) -> dict[str, Any]:
    """What a check needs to know about an output schema class."""
    from pydantic import BaseModel

    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        return {"is_model": False, "type": type(schema).__name__, "repr": repr(schema)[:80]}
    fields = []
    for name, info in schema.model_fields.items():
        limits = [getattr(m, "max_length", None) for m in info.metadata if hasattr(m, "max_length")]
        fields.append({"name": str(name), "text": info.annotation is str,
                       "description": str(info.description or ""), "max_length": limits[0] if limits else None})
    facts: dict[str, Any] = {"is_model": True, "type": schema.__name__, "fields": fields, "save_error": ""}
    try:
        from marketlab.workflow import schema_source

        schema_source(schema)
    except Exception as err:  # noqa: BLE001 - any reason it cannot be saved is reported the same way
        facts["save_error"] = str(err).splitlines()[0][:300] if str(err) else type(err).__name__
    return facts


RULE_FIELDS = ("max_words", "min_words", "max_chars", "ranges", "required", "banned_words")


def rules_data(rules: Any) -> dict[str, Any]:
    """The data of a Rules object (custom rules are code: only their count travels)."""
    from marketlab.workflow import Rules

    if not isinstance(rules, Rules):
        return {"is_rules": False, "type": type(rules).__name__}
    data: dict[str, Any] = {"is_rules": True}
    for name in RULE_FIELDS:
        value = getattr(rules, name)
        data[name] = {str(k): v for k, v in dict(value).items()} if hasattr(value, "items") else list(value)
    data["custom_count"] = len(getattr(rules, "custom", ()) or ())
    return data


def rules_from_data(data: dict[str, Any]) -> Any:
    """A Rules object rebuilt from rules_data (grader side); None when the data is not rules."""
    from marketlab.workflow import Rules

    if not isinstance(data, dict) or not data.get("is_rules"):
        return None
    def ints(value: Any) -> dict[str, int]:
        return {str(k): int(v) for k, v in (value or {}).items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}
    ranges = {str(k): tuple(v)[:2] for k, v in (data.get("ranges") or {}).items() if isinstance(v, (list, tuple))}
    return Rules(max_words=ints(data.get("max_words")), min_words=ints(data.get("min_words")),
                 max_chars=ints(data.get("max_chars")), ranges=ranges,
                 required=tuple(str(x) for x in data.get("required") or ()),
                 banned_words=tuple(str(x) for x in data.get("banned_words") or ()))


def brief_data(brief: Any) -> dict[str, Any] | None:
    """A Brief as plain data (None when it is not a Brief)."""
    from marketlab.brief import Brief

    return brief.model_dump(mode="json") if isinstance(brief, Brief) else None


def describe(target: Any, kind: str) -> Any:
    """The description of one object by kind: schema, rules, brief or value (plain data)."""
    if kind == "schema":
        return schema_facts(target)
    if kind == "rules":
        return rules_data(target)
    if kind == "value":
        return target  # plain data (numbers, text, lists, dicts, pydantic values); encoded by the wire
    if kind == "brief":
        data = brief_data(target)
        return {"is_brief": data is not None, "type": type(target).__name__, "data": data}
    raise ValueError(f"unknown kind {kind!r}")
