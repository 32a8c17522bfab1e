"""Serve a saved workflow.py to a check: `python -I -m marketlab.grading.workflow_probe FILE`.

The same line protocol as marketlab.grading.serve_module: a first line says whether the file
imported, then one JSON reply per request. Requests: {"op": "describe"} (what the saved schema,
rules and brief look like) and {"op": "run", "table": ..., "client": ..., "options": {...}} (what
run() returned). What the model endpoint was sent, and how many tokens it served, is observed by
the checking process on its side of the socket, never reported from here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def run_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options passed to workflow.run: quiet, no cache or checkpoint, fast retries."""
    from marketlab.workflow import RetryPolicy

    base = {"model": "scripted", "cache": False, "checkpoint": False, "progress": False, "show_summary": False,
            "rpm": None, "retry": RetryPolicy(base_delay=0.01, max_delay=0.05)}
    return {**base, **options}


def describe(module: Any) -> dict[str, Any]:
    """The saved schema, rules and brief, as data."""
    from pydantic import BaseModel

    from marketlab.checks import extract

    schemas = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, BaseModel)
               and v is not BaseModel and v.__module__ == module.__name__]
    return {"schema": extract.schema_facts(schemas[0]) if schemas else None,
            "rules": extract.rules_data(getattr(module, "RULES", None)),
            "brief": extract.brief_data(getattr(module, "BRIEF", None))}


def run(module: Any, request: dict[str, Any]) -> dict[str, Any]:
    """Run the workflow once as requested; what came back, as data."""
    import pandas as pd

    from marketlab.grading import wire

    table = wire.decode(request["table"])
    client = wire.decode(request["client"], learner_side=True)
    out = module.run(table, client, **run_options(request.get("options") or {}))
    result: dict[str, Any] = {"type": type(out).__name__}
    if isinstance(out, pd.DataFrame):
        result.update(rows=len(out), index_same=list(out.index) == list(table.index),
                      columns=[str(c) for c in out.columns],
                      status=[str(s) for s in out["status"]] if "status" in out.columns else [],
                      error=[str(e) for e in out["error"]] if "error" in out.columns else [])
    return result


def main(argv: list[str]) -> int:
    """Import the file, then answer requests until stdin closes; the workflow's printing goes to stderr."""
    from marketlab.grading.serve_module import import_path, serve_lines

    def answer(module: Any, request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "value": describe(module) if request.get("op") == "describe" else run(module, request)}

    return serve_lines(lambda: import_path(Path(argv[0]), "learner_workflow"), answer)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
