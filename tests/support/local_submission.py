"""A grader's view of a submission without a kernel: the same wire protocol, answered in-process.

Graders take a `marketlab.grading.execute.Submission`; tests of the graders' logic can pass this
instead. Every request still goes through `marketlab.grading.wire` (encode, answer, decode), so
the grader sees data only, exactly as it does across the sandbox wall.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from marketlab.grading import wire
from marketlab.grading.harness import Harness, LocalHarness, RemoteFunction, unpack


class LocalSubmission:
    """Stands in for a graded notebook: a namespace of its objects and its folder."""

    def __init__(self, namespace: dict[str, Any], folder: Path | None = None) -> None:
        self.namespace = namespace
        self.folder = Path(folder or Path.cwd())
        self.harness: Harness = LocalHarness()

    def ask(self, request: dict[str, Any]) -> Any:
        """Answer a request as the kernel would, through a JSON round trip."""
        text = json.dumps(wire.encode(request), allow_nan=True)
        reply = wire.answer_request(self.namespace, wire.decode(json.loads(text), learner_side=True))
        return unpack(json.loads(json.dumps(reply, allow_nan=True, default=str)))

    def describe(self, name: str, kind: str) -> Any:
        """A plain-data description of one object."""
        return self.ask({"op": "describe", "name": name, "kind": kind})

    def function(self, name: str) -> RemoteFunction:
        """A learner function, called through the wire."""
        return RemoteFunction(self.ask, name)
