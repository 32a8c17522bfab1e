"""Up-front checks of what run_batch is given, and calling the learner's message builder on one row."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import openai
import pandas as pd
from pydantic import BaseModel

from .errors import WorkflowInputError
from .result import META_COLUMNS

ROLES = ("system", "user", "assistant", "developer")
Builder = Callable[..., Any]


def check_frame(df: Any, required_columns: Sequence[str] = ()) -> None:
    """The input is a non-empty DataFrame with every required column."""
    if not isinstance(df, pd.DataFrame):
        raise WorkflowInputError(
            f"The input table is a {type(df).__name__}, not a pandas DataFrame.",
            "Pass a DataFrame, e.g. data.load('products') or pandas.read_csv('my_file.csv').")
    if df.empty:
        raise WorkflowInputError(
            "The input table has no rows, so there is nothing to run.",
            "Check the filter or the file you loaded: len(df) should be at least 1.")
    missing = [c for c in required_columns if c not in df.columns]
    if missing:
        raise WorkflowInputError(
            f"The input table has no column {_names(missing)}. Its columns are: {_names(df.columns)}.",
            "Rename the column in your table (df.rename(columns={'old': 'new'})) or load the right file.")


def check_schema(schema: Any) -> dict[str, Any]:
    """The schema is a pydantic model the SDK can send as a strict JSON schema; returns that schema."""
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        raise WorkflowInputError(
            f"The output schema is {schema!r}, not a pydantic model class.",
            "Define it as `class MyOutput(BaseModel):` with one line per field, and pass the class itself "
            "(MyOutput, not MyOutput()).")
    if not schema.model_fields:
        raise WorkflowInputError(f"The output schema {schema.__name__} has no fields.",
                                 "Add at least one field, e.g. `description: str`.")
    clash = [name for name in schema.model_fields if name in META_COLUMNS]
    if clash:
        raise WorkflowInputError(
            f"The output schema uses the name(s) {_names(clash)}, which the runner needs for its own columns.",
            f"Rename those fields; these names are taken: {_names(META_COLUMNS)}.")
    try:
        from openai.lib._pydantic import to_strict_json_schema

        return to_strict_json_schema(schema)
    except ImportError:  # pragma: no cover - older or newer SDK layout
        return schema.model_json_schema()
    except Exception as err:  # the SDK rejects types OpenAI's strict mode cannot express
        raise WorkflowInputError(
            f"The output schema {schema.__name__} cannot be sent as structured output: {err}.",
            "Use plain field types: str, int, float, bool, list[str] or Literal['a', 'b'].") from None


def check_client(client: Any, model: Any) -> None:
    """The client is an openai.OpenAI and the model a non-empty name."""
    if not isinstance(client, openai.OpenAI):
        raise WorkflowInputError(
            f"The client is a {type(client).__name__}, not an openai.OpenAI client.",
            "Pass marketlab.llm.client() (or openai.OpenAI(...) for your company's endpoint).")
    if not isinstance(model, str) or not model.strip():
        raise WorkflowInputError(f"The model name is {model!r}.",
                                 "Pass the model name as text, e.g. marketlab.llm.model_name().")


def builder_takes_brief(builder: Any) -> bool:
    """True for build_messages(brief, record), False for build_messages(record)."""
    if not callable(builder):
        raise WorkflowInputError(
            f"build_messages is a {type(builder).__name__}, not a function.",
            "Pass the function itself, without brackets: build_messages, not build_messages(...).")
    try:
        params = inspect.signature(builder).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return len(positional) >= 2 or not positional
    required = [p for p in positional if p.default is p.empty]
    if len(required) > 2 or not positional:
        raise WorkflowInputError(
            f"build_messages takes {len(required) or 'no'} arguments; the runner calls it with "
            "(record) or (brief, record).",
            "Define it as `def build_messages(brief, record):` or `def build_messages(record):`.")
    return len(required) == 2


def to_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A plain dict of one row; missing values stay as they are (NaN, None, pd.NA)."""
    return dict(row)


def message_problem(messages: Any) -> tuple[str, bool] | None:
    """What is wrong with a builder's return value, and whether it is about the shape (same for every row)."""
    if not isinstance(messages, list) or not messages:
        return f"build_messages returned {type(messages).__name__}, not a list of messages", True
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            return "every message must be a dict like {'role': 'user', 'content': '...'}", True
        content = m.get("content")
        if not isinstance(content, str):
            shown = "empty" if content is None or (isinstance(content, float) and math.isnan(content)) else \
                type(content).__name__
            return (f"the {m['role']} message's content is {shown}, not text; turn values into text with "
                    "str(...) and leave empty fields out (marketlab.brief.is_missing)"), False
        if not content.strip():
            return f"the {m['role']} message is blank", False
    return None


def explain_builder_error(err: Exception, columns: Sequence[str]) -> str:
    """One line for a builder failure, with a hint for the usual causes."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    line = f"build_messages stopped on this row with {type(err).__name__}" + (f": {text[:200]}" if text else "")
    if isinstance(err, KeyError):
        return line + f" (the row has no such field; its fields are {_names(columns)})"
    if isinstance(err, (TypeError, AttributeError)) and any(w in text for w in ("float", "int", "NoneType", "NAType")):
        return line + " (a field holds a number or is empty where text was expected; use str(value) and skip " \
                      "empty fields with marketlab.brief.is_missing)"
    return line


def missing_column(err: BaseException, columns: Sequence[str]) -> str | None:
    """The column name when err is a KeyError for a column the table does not have."""
    if isinstance(err, KeyError) and err.args and isinstance(err.args[0], str) and err.args[0] not in columns:
        return err.args[0]
    return None


def _names(items: Any) -> str:
    return ", ".join(f"'{item}'" for item in items)
