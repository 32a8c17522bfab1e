"""Serve one saved learner module to a check: `python -I -m marketlab.checks.serve_module FILE`.

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
from pathlib import Path


def main(argv: list[str]) -> int:
    """Import the module, then answer requests until stdin closes."""
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # whatever the learner's module prints goes to stderr
    sys.stdout = sys.stderr
    from marketlab.checks.wire import answer_request

    path = Path(argv[0])
    name = path.stem
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        hello = {"ok": True}
    except BaseException as exc:  # noqa: BLE001 - the learner's file may fail in any way
        hello = {"ok": False, "error": {"kind": type(exc).__name__, "text": str(exc)[:300]}}
    replies.write(json.dumps(hello) + "\n")
    replies.flush()
    if not hello["ok"]:
        return 0
    namespace = vars(module)
    for line in sys.stdin:
        try:
            request = json.loads(line)
        except ValueError:
            break
        reply = answer_request(namespace, request)
        replies.write(json.dumps(reply, allow_nan=True, default=str) + "\n")
        replies.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
