"""Save a workflow as one importable file, workflow.py, with run(df, client, **overrides) -> DataFrame.

The file holds everything the workflow needs: the brief (as YAML), the output schema (written
out as a class), the rules, the checks run on every reply (CHECKS), the settings (one RunSettings
value) and build_messages. It imports only marketlab, pandas and pydantic, so it runs anywhere:
another notebook, a scheduled job, the grader. Writing, importing it back and loading it is
marketlab.artifacts.ModuleFile, shared with Labs 3 and 4.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, Optional

from pydantic import BaseModel, Field

from marketlab import artifacts
from marketlab.brief import Brief

from .settings import RunSettings
from .validate import Rules

WORKFLOW_FILE = "workflow.py"
FILE = artifacts.ModuleFile(WORKFLOW_FILE, "run", "workflow", "the notebook's save cell")
_CONSTRAINTS = {"MaxLen": "max_length", "MinLen": "min_length", "Ge": "ge", "Le": "le", "Gt": "gt", "Lt": "lt"}

TEMPLATE = '''"""{title}: a workflow saved from marketlab Lab 2.

    import workflow
    results = workflow.run(df, client)                          # one result row per row of df
    results = workflow.run(df, client, include=["sku"], token_budget=50_000)   # settings can be overridden

Everything it needs is in this file: the brief, the output schema, the rules, the checks, the
settings and build_messages. Edit the notebook and save again rather than editing this file by hand.
"""

from __future__ import annotations

from typing import Any, Literal, Optional  # noqa: F401

import pandas as pd
from pydantic import BaseModel, Field  # noqa: F401

from marketlab.brief import Brief  # noqa: F401
from marketlab.evaluate.checks import banned_words
from marketlab.evaluate.facts import faithfulness
from marketlab.workflow import (Budget, Limits, Retries, Rules, RunSettings, Storage,  # noqa: F401
                                Timeouts, run_batch)

BRIEF = Brief.from_yaml({brief_literal})


{schema_source}


RULES = {rules!r}

# Run on every usable reply: the rules' banned words, and every claim looked up in the product's
# facts and limits. The results get a `checks` column (passed / failed / not checked) with the reason.
CHECKS = [banned_words(RULES.banned_words), faithfulness()]

MODEL = {model!r}  # None: the model of the active backend

SETTINGS = {settings}


{builder_source}


def run(df: pd.DataFrame, client, model: str | None = MODEL, **overrides) -> pd.DataFrame:
    """Run the workflow on every row of df with this file's brief, schema, rules and SETTINGS.

    overrides change single settings for this run, e.g. include=["sku"], token_budget=50_000, workers=1
    (checks=None runs without the checks).
    """
    overrides.setdefault("checks", CHECKS)
    return run_batch(df, {builder_name}, {schema_name}, client, model, brief=BRIEF, rules=RULES,
                     settings=SETTINGS, **overrides)
'''


def _annotation(tp: Any) -> str:
    if tp is type(None):
        return "None"
    if isinstance(tp, type) and tp in (str, int, float, bool):
        return tp.__name__
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if origin in (list, tuple, set) and args:
        inner = ", ".join(_annotation(a) for a in args)
        return f"{origin.__name__}[{inner}]"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_annotation(a) for a in args)
    raise artifacts.ArtifactError(f"the type {tp!r} cannot be saved",
                                  "Use str, int, float, bool, list[str] or Literal['a', 'b'].")


def schema_source(schema: type[BaseModel]) -> str:
    """Python source that re-creates a simple pydantic schema (checked: same JSON schema)."""
    lines = [f"class {schema.__name__}(BaseModel):"]
    if schema.__doc__ and schema.__doc__.strip():
        lines.append(f"    {schema.__doc__.strip()!r}")
        lines.append("")
    for name, info in schema.model_fields.items():
        try:
            annotation = _annotation(info.annotation)
        except artifacts.ArtifactError as err:  # the same error, saying which field
            raise artifacts.ArtifactError(f"Field '{name}' of {schema.__name__}: {err.problem}.", err.fix) from None
        kwargs: list[str] = []
        if not info.is_required():
            kwargs.append(f"default={info.default!r}")
        if info.description:
            kwargs.append(f"description={info.description!r}")
        for item in info.metadata:
            key = _CONSTRAINTS.get(type(item).__name__)
            if key:
                kwargs.append(f"{key}={_value(item)!r}")
            elif getattr(item, "pattern", None):
                kwargs.append(f"pattern={item.pattern!r}")
        default = f" = Field({', '.join(kwargs)})" if kwargs else ""
        lines.append(f"    {name}: {annotation}{default}")
    source = "\n".join(lines)
    rebuilt = _exec_schema(source, schema.__name__)
    if rebuilt.model_json_schema() != schema.model_json_schema():
        raise artifacts.ArtifactError(f"{schema.__name__} uses something that cannot be saved to a file (a "
                                      "validator, a nested model or a custom type).",
                                      "Keep the schema to plain fields with Field(...) limits.")
    return source


def _value(item: Any) -> Any:
    for attr in ("max_length", "min_length", "ge", "le", "gt", "lt"):
        if hasattr(item, attr):
            return getattr(item, attr)
    raise artifacts.ArtifactError(f"The schema uses a limit marketlab cannot write to a file: {item!r}.",
                                  "Keep the schema to plain fields with Field(...) limits.")


def _exec_schema(source: str, name: str) -> type[BaseModel]:
    namespace: dict[str, Any] = {"BaseModel": BaseModel, "Field": Field, "Literal": Literal, "Optional": Optional}
    # Our own generated code, compiled without this module's `from __future__ import annotations`.
    exec(compile(source, f"<schema {name}>", "exec", dont_inherit=True), namespace)  # noqa: S102
    return namespace[name]


def _text_literal(text: str) -> str:
    """A readable triple-quoted literal for YAML text (repr() when the text would break one)."""
    if "'''" in text or "\\" in text or text.endswith("'"):
        return repr(text)
    return "'''\n" + text + "'''"


def workflow_source(brief: Any, build_messages: Callable[..., Any], schema: type[BaseModel],
                    rules: Rules | None = None, settings: RunSettings | dict[str, Any] | None = None) -> str:
    """The text of workflow.py for these parts (settings: a RunSettings, or run_batch keywords as a dict)."""
    if not isinstance(brief, Brief):
        raise artifacts.ArtifactError("brief is not a marketlab Brief.",
                                      "Pass the brief you loaded, e.g. artifacts.load_brief().")
    if rules is not None and rules.custom:
        raise artifacts.ArtifactError("Rules with custom=(...) functions cannot be saved to a file.",
                                      "Use the built-in rules (max_words, banned_words, ...) in the saved workflow.")
    model, chosen = _settings(settings)
    name = getattr(build_messages, "__name__", "")
    if not name.isidentifier() or name == "<lambda>":
        raise artifacts.ArtifactError("build_messages is a lambda, which cannot be saved to a file.",
                                      "Define it with `def build_messages(brief, record):`.")
    return TEMPLATE.format(
        title=brief.title or "Workflow", brief_literal=_text_literal(brief.to_yaml()),
        schema_source=schema_source(schema),
        rules=rules if rules is not None else Rules(), model=model, settings=chosen.source(),
        builder_source=artifacts.function_source(build_messages).rstrip(), builder_name=name,
        schema_name=schema.__name__)


def _settings(settings: RunSettings | dict[str, Any] | None) -> tuple[str | None, RunSettings]:
    """The model name (or None) and the RunSettings to save."""
    if isinstance(settings, RunSettings) or settings is None:
        return None, settings or RunSettings()
    if not isinstance(settings, dict):
        raise artifacts.ArtifactError(f"settings is a {type(settings).__name__}.",
                                      "Pass settings=RunSettings(...) or a dict such as {'workers': 4}.")
    options = dict(settings)
    model = options.pop("model", None)
    return model, RunSettings.build(**options)


def save_workflow(brief: Any, build_messages: Callable[..., Any], schema: type[BaseModel],
                  rules: Rules | None = None, settings: RunSettings | dict[str, Any] | None = None,
                  here: str | Path | None = None) -> list[Path]:
    """Write workflow.py next to the notebook (and to the shared folder) and import it back to check it."""
    return FILE.save(workflow_source(brief, build_messages, schema, rules, settings), here)


def load_workflow(path: str | Path | None = None) -> ModuleType:
    """Import a saved workflow.py (default: the one next to the notebook) as a module."""
    return FILE.load(path)


__all__ = ["load_workflow", "save_workflow", "schema_source", "workflow_source"]
