"""The workflow's own requests, answered from batch results: how --batch-api reuses run_batch whole.

The workflow runs as it always does, but its client is a ReplayEndpoint. A request whose answer
came back in a batch gets that answer; any other request is noted for the next batch and refused
for now. So the requests in a batch are exactly the ones run_batch builds (brief, schema line,
response_format, max_tokens...), and validation, repair, checks and the results table are exactly
run_batch's. A request is known by its custom_id: a hash of its whole body, so an answer finds its
way back to every row that asked for it, whatever order the rows run in.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
import openai

CHAT_PATH = "/chat/completions"
DEFERRED_CODE = "deferred_to_batch"
REPLAY_KEY = "replay"  # not a key: the replay client never leaves this process


@dataclass(frozen=True)
class Answer:
    """What the batch said to one request: the HTTP status and the response body."""

    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        """True for a 2xx answer."""
        return 200 <= self.status < 300


def request_id(body: Mapping[str, Any]) -> str:
    """The custom_id of a request: a hash of its whole body (same body, same id)."""
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return "req-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


class ReplayEndpoint(httpx2.BaseTransport):
    """An OpenAI endpoint that answers from `answers` and collects the requests it cannot answer yet."""

    def __init__(self, answers: Mapping[str, Answer]) -> None:
        self.answers = answers
        self.deferred: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def client(self, base_url: str) -> openai.OpenAI:
        """A real openai.OpenAI on this endpoint; base_url is the provider's, so cache keys stay the provider's."""
        return openai.OpenAI(api_key=REPLAY_KEY, base_url=base_url, max_retries=0,
                             http_client=httpx2.Client(transport=self))

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Answer one request from the SDK."""
        if request.method != "POST" or not request.url.path.endswith(CHAT_PATH):
            return httpx2.Response(404, json=_error(f"Invalid URL ({request.method} {request.url.path}): a batch "
                                                    "answers chat completions only", None))
        body = json.loads(request.read() or b"{}")
        key = request_id(body)
        answer = self.answers.get(key)
        if answer is None:
            with self._lock:
                self.deferred[key] = body
            # 400 is neither retried nor fatal: the row fails in this pass, and is answered in the next one.
            return httpx2.Response(400, json=_error("Sent in the next batch.", DEFERRED_CODE))
        return httpx2.Response(answer.status, json=answer.body)


def _error(message: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


__all__ = ["Answer", "DEFERRED_CODE", "ReplayEndpoint", "request_id"]
