"""`--param name=value`: reading the values, and the parameters a packaged workflow folder takes.

A value is read as YAML, so numbers, true/false and lists come through as such:

    --param workers=2  --param token_budget=50000  --param include=[sku]
    --param 'columns={sku: product_code, name: title}'     the workflow's column: your column

Anything else stays text. A notebook gets its parameters as they are (papermill injects them);
a workflow folder takes the four below plus any run_batch setting (workers, max_tokens, ...).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from marketlab.workflow import KEYWORDS, RunSettings

from .exitcodes import RunInputError

FOLDER_PARAMS = {
    "columns": "which of your columns feeds each column the workflow reads: {its_name: your_name, ...}",
    "key": "the column that identifies a row, copied into the output so results join back (default: the first "
           "unique one of sku, id and the columns ending in _id)",
    "model": "the model name to use instead of the workflow's own",
    "products": "a CSV or Parquet file of product facts for evaluate.py (default: the input itself)",
}


def parse_value(text: str) -> Any:
    """A --param value: YAML scalars, lists and mappings; text when YAML reads it as anything else."""
    stripped = text.strip()
    try:
        value = yaml.safe_load(stripped) if stripped else ""
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at character {mark.column + 1}" if mark is not None else ""
        raise RunInputError(f"The value {_show(text)} could not be read{where}.",
                            "Write a mapping as {workflow_column: your_column, other: yours} and a list as "
                            "[a, b]; put text with : # { or [ in quotes.") from None
    collection = isinstance(value, (dict, list))
    if collection and not stripped.startswith(("{", "[")):
        return text  # "a: b" or "- a" without brackets is text, not YAML structure
    if isinstance(value, (datetime.date, datetime.datetime)):
        return text  # dates stay as written
    if isinstance(value, str) and not stripped.startswith(("'", '"')):
        return text  # plain text stays exactly as written, spaces included
    return value


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """`name=value` strings (from --param) as a dict; a malformed or repeated one is an error."""
    params: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise RunInputError(f"--param {_show(item)} is not of the form name=value.",
                                "Write it as --param name=value, e.g. --param workers=2.")
        if not name.isidentifier():
            raise RunInputError(f"--param {_show(name)}: a parameter name is one word of letters, digits and _.",
                                "Use the name exactly as the workflow or notebook spells it, e.g. token_budget.")
        if name in params:
            raise RunInputError(f"--param {name} is given twice.", "Give each parameter once.")
        try:
            params[name] = parse_value(raw)
        except RunInputError as err:
            raise RunInputError(f"--param {name}: {err.problem}", err.fix) from None
    return params


@dataclass(frozen=True)
class FolderParams:
    """The parameters of a packaged workflow folder, checked."""

    columns: Mapping[str, str] = field(default_factory=dict)  # the workflow's column -> the input's column
    key: str | None = None
    model: str | None = None
    products: Path | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)  # run_batch keywords: workers, token_budget, ...


def folder_params(params: Mapping[str, Any]) -> FolderParams:
    """Split and check a folder run's parameters; unknown names and bad values say what to write instead."""
    settings = {name: value for name, value in params.items() if name not in FOLDER_PARAMS}
    unknown = [name for name in settings if name not in KEYWORDS]
    if unknown:
        raise RunInputError(f"--param {unknown[0]} is not a parameter of a workflow folder.",
                            f"Use one of: {', '.join(FOLDER_PARAMS)}, or a run setting "
                            f"({', '.join(sorted(KEYWORDS))}).")
    RunSettings.build(**settings)  # a bad value fails here, with the setting's own message, before any call
    columns = params.get("columns") or {}
    if not isinstance(columns, dict) or not all(isinstance(k, str) and isinstance(v, str) and v.strip()
                                                for k, v in columns.items()):
        raise RunInputError("--param columns must map each column the workflow reads to one of your columns.",
                            "Write it as --param 'columns={name: product_title, sku: product_code}' "
                            "(the workflow's name first, then yours).")
    text = {name: params.get(name) for name in ("key", "model", "products")}
    for name, value in text.items():
        if value is not None and not (isinstance(value, str) and value.strip()):
            raise RunInputError(f"--param {name} must be text, not {_show(str(value))}.",
                                f"Write --param {name}=... with a {'file path' if name == 'products' else 'name'}.")
    return FolderParams(columns={k.strip(): v.strip() for k, v in columns.items()}, key=text["key"],
                        model=text["model"], products=Path(text["products"]) if text["products"] else None,
                        settings=settings)


def _show(text: str, limit: int = 60) -> str:
    shown = text if len(text) <= limit else text[: limit - 1] + "…"
    return repr(shown)


__all__ = ["FOLDER_PARAMS", "FolderParams", "folder_params", "parse_params", "parse_value"]
