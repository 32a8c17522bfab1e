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
from typing import Any

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
    def rate_limit(cls, retry_after: float = 1.0) -> Fault:
        """HTTP 429 with a retry-after header (seconds)."""
        return cls("rate_limit", retry_after)

    @classmethod
    def server_error(cls) -> Fault:
        """HTTP 500."""
        return cls("server_error")

    @classmethod
    def timeout(cls) -> Fault:
        """The request times out before any answer."""
        return cls("timeout")

    @classmethod
    def malformed_json(cls) -> Fault:
        """A finished reply whose content is not valid JSON."""
        return cls("malformed_json")

    @classmethod
    def truncated_json(cls) -> Fault:
        """A reply cut off at the token limit: JSON unfinished, finish_reason 'length'."""
        return cls("truncated_json")


Reply = str | dict | Fault
Script = Reply | Callable[[dict], Reply]

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


# How a prompt states a length in words: general English forms (the numbers come from the prompt).
# Each pattern gives (kind, regex): "range" captures low and high, "min" and "max" one number.
WORD_LIMIT_FORMS: tuple[tuple[str, str], ...] = (
    ("range", r"\b(\d+)\s*(?:to|-|–|—|and)\s*(\d+)\s+words\b"),
    ("min", r"\b(?:at least|no fewer than|no less than|a minimum of|minimum of|min\.?)\s+(\d+)\s+words\b"),
    ("min", r"\b(\d+)\s+words\s+or\s+more\b"),
    ("max", (r"\b(?:at most|no more than|up to|under|fewer than|less than|a maximum of|maximum of|max\.?|"
             r"within)\s+(\d+)\s+words\b")),
    ("max", r"\b(\d+)\s+words\s+or\s+(?:fewer|less)\b"),
)
# The stand-in's text: plain sentences with no product claim, no hype and no repeated sentence, so a
# dry run tests the workflow (retries, rules, budget) and not the copy.
STAND_IN_SENTENCES = (
    "This reply comes from the scripted stand-in model, which answers at once.",
    "It keeps to the length the prompt asks for, so a dry run tests the workflow and not the copy.",
    "It makes no claim about the product, the review or the lead in the row.",
    "The real model writes the text when you run the workflow on it.",
    "Read those replies, and let your checks judge them.",
)


def _limits_in(text: str) -> tuple[int | None, int | None]:
    import re

    low: int | None = None
    high: int | None = None
    for kind, pattern in WORD_LIMIT_FORMS:
        for match in re.finditer(pattern, text, flags=re.IGNORECASE):
            numbers = [int(n) for n in match.groups()]
            if kind in ("range", "min"):
                low = max(low or 0, min(numbers))
            if kind in ("range", "max"):
                high = max(numbers) if high is None else min(high, max(numbers))
    return low, high


CHARACTER_LIMIT = (r"\b(?:at most|no more than|up to|under|fewer than|less than|a maximum of|maximum of|max\.?|"
                   r"within)\s+(\d+)\s+(?:characters|chars)\b")


def _stated_characters(text: str) -> float:
    """The fewest characters a field's description allows ("at most 60 characters"), or no limit."""
    import re

    found = [int(n) for n in re.findall(CHARACTER_LIMIT, text, flags=re.IGNORECASE)]
    return min(found) if found else float("inf")


def _joined(*limits: tuple[int | None, int | None]) -> tuple[int | None, int | None]:
    """Several limits at once: the highest minimum and the lowest maximum (the stricter upper one if they clash)."""
    lows = [low for low, _ in limits if low is not None]
    highs = [high for _, high in limits if high is not None]
    low, high = (max(lows) if lows else None), (min(highs) if highs else None)
    return (high, high) if low is not None and high is not None and low > high else (low, high)


def stated_word_limits(text: str, fields: tuple[str, ...] = ()) -> dict[str | None, tuple[int | None, int | None]]:
    """The fewest and most words a prompt asks for: under a field's name where the sentence names that one
    field ("the description: 30 to 60 words"), else under None (a length for the text as a whole)."""
    import re

    found: dict[str | None, list[tuple[int | None, int | None]]] = {}
    for clause in re.split(r"\n+|(?<=[.;,])\s+(?=\S)", text):
        limits = _limits_in(clause)
        if limits == (None, None):
            continue
        named = [f for f in fields if re.search(rf"\b{re.escape(f)}\b|\b{re.escape(f.replace('_', ' '))}\b",
                                                 clause, flags=re.IGNORECASE)]
        found.setdefault(named[0] if len(named) == 1 else None, []).append(limits)
    return {key: _joined(*values) for key, values in found.items()}


def stand_in_text(words: int) -> str:
    """Plain text of exactly `words` words (at least one), ending with a full stop."""
    pool = " ".join(STAND_IN_SENTENCES).split()
    extra = 0
    while len(pool) < words:
        extra += 1
        pool += f"Line {extra} more of the stand-in reply.".split()
    return " ".join(pool[:max(words, 1)]).rstrip(".,") + "."


def _prompt_text(body: dict[str, Any]) -> str:
    """The system and user text of a request (what a model reads its instructions from)."""
    parts = []
    for message in body.get("messages", []):
        if message.get("role") in ("system", "developer", "user"):
            content = message.get("content") or ""
            if isinstance(content, list):
                content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
            parts.append(str(content))
    return "\n".join(parts)


def _follow_stated_limits(example: dict[str, Any], schema: dict[str, Any], prompt: str) -> None:
    """Give text fields the length the prompt states, as a model that follows the brief would.

    A field's own description ("20 to 40 words"), or a sentence of the prompt that names that one
    field, sets its length; a length stated for the text as a whole goes to the string field(s) with
    the largest declared length (a description, not a 70-character headline) if that field can hold
    it (about five characters a word); "at most N characters" in a field's description caps it. A
    prompt that states no length gets the short example, so a rule the brief never states still
    fails, with its fix.
    """
    props = {name: prop for name, prop in schema.get("properties", {}).items()
             if isinstance(example.get(name), str) and prop.get("type") == "string" and not prop.get("enum")}
    if not props:
        return
    room = {name: prop.get("maxLength", float("inf")) for name, prop in props.items()}
    stated = stated_word_limits(prompt, tuple(props))
    for name, prop in props.items():
        parts = [limits for limits in stated_word_limits(str(prop.get("description") or "")).values()]
        parts += [stated[name]] if name in stated else []
        whole = stated.get(None)
        if whole is not None and room[name] == max(room.values()) and (whole[0] or 0) * 5 <= room[name]:
            parts.append(whole)  # not into a field too short to hold it (an 80-character headline)
        low, high = _joined(*parts) if parts else (None, None)
        if low is None and high is None:
            continue
        words = (low + high) // 2 if low is not None and high is not None else (
            low + 2 if low is not None else min(high or 12, 12))
        text = stand_in_text(words)
        room_left = min(room[name], _stated_characters(str(prop.get("description") or "")))
        if len(text) > room_left:
            text = text[: int(room_left)].rsplit(" ", 1)[0]
        example[name] = text.ljust(prop.get("minLength", 0), ".")


def default_reply(body: dict[str, Any]) -> Reply:
    """Deterministic answer: a schema-valid JSON object for structured requests, else an echo.

    A structured reply follows the word limits the prompt states (see _follow_stated_limits).
    """
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        schema = fmt.get("json_schema", {}).get("schema", {})
        example = example_for_schema(schema)
        if isinstance(example, dict) and isinstance(schema, dict):
            _follow_stated_limits(example, schema, _prompt_text(body))
        planted = json.loads(os.environ.get(REPLY_FIELDS_VARIABLE) or "{}")
        if isinstance(example, dict) and isinstance(planted, dict):
            example.update({k: v for k, v in planted.items() if k in example})
        return json.dumps(example)
    if fmt.get("type") == "json_object":
        return "{}"
    last_user: dict[str, Any] = next((m for m in reversed(body.get("messages", [])) if m.get("role") == "user"), {})
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
