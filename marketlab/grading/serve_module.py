"""Serve one saved learner module to a check: `python -I -m marketlab.grading.serve_module FILE`.

Reads one JSON request per line on stdin ({"op": "call", "name": ..., "args": [...]} or
{"op": "describe", ...}) and writes one JSON reply per line. The module's own printing goes to
stderr, so it cannot interleave with the replies. Runs wherever the check puts it: a plain
process for notebook checks, the grading sandbox for graders.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any


def _error(exc: BaseException) -> dict[str, Any]:
    return {"ok": False, "error": {"kind": type(exc).__name__, "text": str(exc)[:300]}}


def serve_lines(load: Callable[[], Any], answer: Callable[[Any, dict[str, Any]], dict[str, Any]]) -> int:
    """The line protocol of every learner-side process: a first line says whether `load()` worked, then
    one JSON reply per JSON request line, until stdin closes. What learner code prints goes to stderr."""
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def reply(message: dict[str, Any]) -> None:
        replies.write(json.dumps(message, allow_nan=True, default=str) + "\n")
        replies.flush()

    try:
        loaded = load()
    except BaseException as exc:  # noqa: BLE001 - the learner's file may fail in any way
        reply(_error(exc))
        return 0
    reply({"ok": True})
    for line in sys.stdin:
        try:
            request = json.loads(line)
        except ValueError:
            break
        try:
            reply(answer(loaded, request))
        except BaseException as exc:  # noqa: BLE001 - learner code may raise anything
            if isinstance(exc, KeyboardInterrupt):
                raise
            reply(_error(exc))
    return 0


def import_path(path: Path, name: str) -> ModuleType:
    """Import a learner's file as a module of that name."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]  # a .py path always gives a spec
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]  # and a source loader
    return module


def main(argv: list[str]) -> int:
    """Import the module, then answer requests until stdin closes."""
    from marketlab.grading.wire import answer_request

    path = Path(argv[0])
    return serve_lines(lambda: import_path(path, path.stem), lambda module, request: answer_request(vars(module),
                                                                                                 request))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
