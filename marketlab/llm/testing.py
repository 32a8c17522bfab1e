"""A scripted, in-process OpenAI endpoint behind the real SDK, for tests and graders.

    endpoint = ScriptedEndpoint(["first reply", Fault.rate_limit(retry_after=0.1), "second"])
    client = endpoint.client()

Replies are used in order; once they run out, `responder` (default: `default_reply`) answers.
A reply is text, a dict with `content` and `finish_reason`, a Fault, or a callable that takes the
request body and returns one of those. Every fault reaches the SDK through its normal path, so
the SDK raises its own exception type (RateLimitError, InternalServerError, APITimeoutError...).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Union

import httpx2
import openai

SCRIPTED_BASE_URL = "http://scripted.invalid/v1"
SCRIPTED_MODEL = "scripted"


@dataclass(frozen=True)
class Fault:
    """A failure the scripted endpoint injects instead of a reply."""

    kind: str
    retry_after: float | None = None

    @classmethod
    def rate_limit(cls, retry_after: float = 1.0) -> "Fault":
        """HTTP 429 with a retry-after header (seconds)."""
        return cls("rate_limit", retry_after)

    @classmethod
    def server_error(cls) -> "Fault":
        """HTTP 500."""
        return cls("server_error")

    @classmethod
    def timeout(cls) -> "Fault":
        """The request times out before any answer."""
        return cls("timeout")

    @classmethod
    def malformed_json(cls) -> "Fault":
        """A finished reply whose content is not valid JSON."""
        return cls("malformed_json")

    @classmethod
    def truncated_json(cls) -> "Fault":
        """A reply cut off at the token limit: JSON unfinished, finish_reason 'length'."""
        return cls("truncated_json")


Reply = Union[str, dict, Fault]
Script = Union[Reply, Callable[[dict], Reply]]

MALFORMED_CONTENT = "{'headline': 'Ready for the trail', 'body': 'Light and tough',}"
TRUNCATED_CONTENT = '{"headline": "Ready for the trail", "body": "Light and to'


def example_for_schema(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> Any:
    """A small, deterministic instance that satisfies a JSON schema (as OpenAI strict schemas use)."""
    defs = defs if defs is not None else {**schema.get("$defs", {}), **schema.get("definitions", {})}
    if "$ref" in schema:
        return example_for_schema(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return example_for_schema(options[0], defs)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: example_for_schema(sub, defs) for name, sub in props.items()}
    if kind == "array":
        count = max(int(schema.get("minItems", 1)), 1)
        return [example_for_schema(schema.get("items", {"type": "string"}), defs) for _ in range(count)]
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        value = max(low, 1) if "maximum" not in schema else min(max(low, 1), schema["maximum"])
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    text = "scripted text"
    return text[: schema["maxLength"]] if "maxLength" in schema else text.ljust(schema.get("minLength", 0), "x")


# Fields the scripted model puts in every structured reply, over its own examples (JSON object): how a
# test plants, say, an unsupported claim in the text a notebook generates, in the notebook's own kernel.
REPLY_FIELDS_VARIABLE = "MARKETLAB_SCRIPTED_FIELDS"


def default_reply(body: dict[str, Any]) -> Reply:
    """Deterministic answer: a schema-valid JSON object for structured requests, else an echo."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        example = example_for_schema(fmt.get("json_schema", {}).get("schema", {}))
        planted = json.loads(os.environ.get(REPLY_FIELDS_VARIABLE) or "{}")
        if isinstance(example, dict) and isinstance(planted, dict):
            example.update({k: v for k, v in planted.items() if k in example})
        return json.dumps(example)
    if fmt.get("type") == "json_object":
        return "{}"
    last_user = next((m for m in reversed(body.get("messages", [])) if m.get("role") == "user"), {})
    content = last_user.get("content") or ""
    if isinstance(content, list):
        content = " ".join(part.get("text", "") for part in content)
    return f"Scripted reply to: {content[:80]}"


def _count_tokens(text: str) -> int:
    return len(text.split())


class ScriptedEndpoint(httpx2.BaseTransport):
    """An httpx2 transport that plays an OpenAI endpoint from a script."""

    def __init__(self, replies: Iterable[Script] = (), responder: Callable[[dict], Reply] | None = None,
                 delay_s: float = 0.0) -> None:
        self._script: deque[Script] = deque(replies)
        self._responder = responder or default_reply
        self._delay_s = delay_s
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []

    def client(self, *, max_retries: int = 2, timeout: float = 30.0,
               event_hooks: dict[str, list[Callable[..., None]]] | None = None) -> openai.OpenAI:
        """A real openai.OpenAI whose requests this endpoint answers."""
        http_client = httpx2.Client(transport=self, event_hooks=event_hooks or {})
        return openai.OpenAI(api_key="scripted-test-key", base_url=SCRIPTED_BASE_URL, http_client=http_client,
                             max_retries=max_retries, timeout=timeout)

    @property
    def calls(self) -> int:
        """How many chat requests reached the endpoint (retries included)."""
        return len(self.requests)

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            item = self._script.popleft() if self._script else self._responder
        return item(body) if callable(item) else item

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Answer one HTTP request from the SDK."""
        path = request.url.path
        if request.method == "GET" and path.endswith("/models"):
            return httpx2.Response(200, json={"object": "list", "data": [
                {"id": SCRIPTED_MODEL, "object": "model", "created": 0, "owned_by": "marketlab"}]})
        if request.method != "POST" or not path.endswith("/chat/completions"):
            return httpx2.Response(404, json={"error": {"message": f"Invalid URL ({request.method} {path})",
                                                        "type": "invalid_request_error", "param": None,
                                                        "code": None}})
        body = json.loads(request.read() or b"{}")
        reply = self._next_reply(body)
        if self._delay_s:
            time.sleep(self._delay_s)
        if isinstance(reply, Fault):
            if reply.kind == "timeout":
                raise httpx2.ReadTimeout("scripted timeout", request=request)
            if reply.kind == "rate_limit":
                return httpx2.Response(429, headers={"retry-after": f"{reply.retry_after:g}"}, json={"error": {
                    "message": "Rate limit reached (scripted).", "type": "requests", "param": None,
                    "code": "rate_limit_exceeded"}})
            if reply.kind == "server_error":
                return httpx2.Response(500, json={"error": {"message": "The server had an error (scripted).",
                                                            "type": "server_error", "param": None, "code": None}})
            content, finish = ((MALFORMED_CONTENT, "stop") if reply.kind == "malformed_json"
                               else (TRUNCATED_CONTENT, "length"))
        elif isinstance(reply, dict):
            content, finish = reply.get("content", ""), reply.get("finish_reason", "stop")
        else:
            content, finish = str(reply), "stop"
        return httpx2.Response(200, json=self._completion(body, content, finish))

    @staticmethod
    def _completion(body: dict[str, Any], content: str, finish: str) -> dict[str, Any]:
        prompt_text = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        prompt_tokens, completion_tokens = _count_tokens(prompt_text), _count_tokens(content)
        return {
            "id": f"chatcmpl-scripted-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": 0,
            "model": body.get("model") or SCRIPTED_MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                         "logprobs": None, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }


def scripted_client(replies: Iterable[Script] = (), *, responder: Callable[[dict], Reply] | None = None,
                    max_retries: int = 2) -> openai.OpenAI:
    """A real openai.OpenAI answered by a fresh ScriptedEndpoint."""
    return ScriptedEndpoint(replies, responder).client(max_retries=max_retries)
