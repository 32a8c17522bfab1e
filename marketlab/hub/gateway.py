"""The model gateway: OpenAI's chat-completions API for the hub's learners, with allowances and a ledger.

A learner's notebook sends its requests with the server's own JupyterHub token (marketlab.llm.client()
does this on the hub); the gateway asks the hub whose token it is, checks the learner's allowance,
and only then forwards the request, with the learner's name as OpenAI's `user` field and the
upstream key that only the gateway holds. Refusals come back in OpenAI's error shape.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import openai
from tornado import iostream, web

from ..llm.protocol import OpenAIError, parse_chat_request
from .identity import ServiceHandler
from .usage import Call, Refused

MAX_BODY = 1_000_000
# The prompt's length in tokens, estimated before it is sent, on the long side (about 3 characters a
# token, plus what a chat template adds per message and around them, a default system prompt included),
# so a learner near the end of their allowance cannot overspend with one long prompt.
CHARS_PER_TOKEN = 3
TEMPLATE_TOKENS = 64
TOKENS_PER_MESSAGE = 8


def estimate_prompt_tokens(messages: list[Any], extra: Any = None) -> int:
    """A generous estimate of a prompt's tokens: its text (and schema, stops: `extra`) and the template's overhead.

    Counted in UTF-8 bytes, at most one token per byte for text outside plain English (emoji, CJK
    take several tokens each), CHARS_PER_TOKEN for plain ASCII.
    """
    ascii_chars = other_bytes = 0
    for text in [json.dumps(m.get("content"), ensure_ascii=False) for m in messages] + [json.dumps(extra or "")]:
        encoded = text.encode()
        plain = sum(1 for byte in encoded if byte < 128)
        ascii_chars, other_bytes = ascii_chars + plain, other_bytes + len(encoded) - plain
    return TEMPLATE_TOKENS + TOKENS_PER_MESSAGE * len(messages) + math.ceil(ascii_chars / CHARS_PER_TOKEN) + other_bytes


def _within(value: Any, low: int, high: int) -> int:
    """A token count from the upstream as a whole number within [low, high] (0 when it is not a number)."""
    try:
        return max(low, min(high, int(value)))
    except (TypeError, ValueError):
        return 0


class GatewayHandler(ServiceHandler):
    """Base of the /v1 handlers: errors as OpenAI's JSON, never an HTML page."""

    def fail(self, error: OpenAIError, **headers: str) -> None:
        self.set_status(error.status)
        for name, value in headers.items():
            self.set_header(name, value)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(error.body()))

    def require_learner(self) -> str | None:
        """The learner's name, or None after answering 401 (a token is needed: a cookie alone never spends)."""
        if not self.by_token:
            self.fail(OpenAIError(401, "The hub's model gateway did not recognise your token. In a notebook on the "
                                       "hub, use marketlab.llm.client(): it sends your hub token for you. If you "
                                       "set OPENAI_API_KEY or OPENAI_BASE_URL yourself, remove them.",
                                  code="invalid_api_key"))
            return None
        return self.current_user["name"]


class ModelsHandler(GatewayHandler):
    """GET /v1/models: the one model the gateway serves."""

    async def get(self) -> None:
        if self.require_learner() is None:
            return
        name = self.service.model_name
        model = {"id": name, "object": "model", "created": 0, "owned_by": "marketlab"}
        self.finish({"object": "list", "data": [model]})


class ChatHandler(GatewayHandler):
    """POST /v1/chat/completions: checked, admitted, forwarded, recorded."""

    def check_xsrf_cookie(self) -> None:
        """Token-authenticated API: no cookie, so no cross-site form can use it."""

    async def post(self) -> None:
        learner = self.require_learner()
        if learner is None:
            return
        try:
            request = self._parse()
        except OpenAIError as exc:  # not written down: a flood of bad requests must not grow the ledger
            return self.fail(exc)
        if self.service.model.state == "down":
            return self.fail(OpenAIError(503, self.service.model.message(), type="server_error",
                                         code="model_restarting"), **{"Retry-After": "30"})
        if self.service.upstream is None:
            return self.fail(OpenAIError(503, "The hub's model is still starting. Run the cell again in a few seconds.",
                                         type="server_error", code="model_starting"), **{"Retry-After": "5"})
        async with self.service.allowances.slot(learner):
            await self._answer(learner, request)

    def _parse(self) -> Any:
        if len(self.request.body) > MAX_BODY:
            raise OpenAIError(413, f"The request is over {MAX_BODY // 1000} kB; send shorter messages.",
                              type="invalid_request_error", code="request_too_large")
        try:
            body = json.loads(self.request.body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise OpenAIError(400, f"We could not parse the JSON body of your request ({exc}).",
                              code="invalid_json") from None
        request = parse_chat_request(body)  # the same allowlist of fields as the built-in server
        served = self.service.model_name
        if request.model != served:
            raise OpenAIError(404, f"The model `{request.model}` is not served on this hub; it serves `{served}`. "
                                   "Pass model=marketlab.llm.model_name().", param="model", code="model_not_found")
        return request

    async def _answer(self, learner: str, request: Any) -> None:
        service = self.service
        messages = [m.model_dump(exclude_none=True) for m in request.messages]
        extra = [request.response_format.model_dump(by_alias=True) if request.response_format else None, request.stop]
        estimate = estimate_prompt_tokens(messages, extra)
        try:
            cap = service.allowances.admit(learner, estimate, request.token_limit())
        except Refused as refusal:
            if service.allowances.first_refusal_this_minute(learner, refusal.kind):  # one row, not one per retry
                service.ledger.record(Call(learner, request.model, 429, refused=refusal.kind))
            code = "insufficient_quota" if refusal.kind == "budget" else "rate_limit_exceeded"
            headers = {"Retry-After": str(refusal.retry_after)}
            if refusal.kind == "budget":
                headers["x-should-retry"] = "false"  # the SDK would otherwise retry a refusal that lasts till midnight
            return self.fail(OpenAIError(429, refusal.message, type="insufficient_quota" if refusal.kind == "budget"
                                         else "requests", code=code), **headers)
        params = request.model_dump(exclude_unset=True, exclude_none=True, by_alias=True)
        params.pop("max_completion_tokens", None)
        params.update(model=service.upstream_model, messages=messages, max_tokens=cap, user=learner)
        started = time.monotonic()
        usage: dict[str, int] = {}
        status = 200
        try:
            if request.stream:
                wants_usage = bool(request.stream_options and request.stream_options.include_usage)
                usage = await self._stream(params, wants_usage)
            else:
                usage = await self._complete(params)
        except openai.APIStatusError as exc:
            status = exc.status_code
            self._upstream_failed(exc)
        except openai.APITimeoutError:
            status = 504
            usage = {"prompt_tokens": estimate, "completion_tokens": cap}  # it may have run to the end upstream
            self.fail(OpenAIError(504, "The model took too long to answer. Run the cell again in a minute.",
                                  type="server_error", code="upstream_timeout"))
        except openai.APIConnectionError:
            if service.local_model:  # the built-in model died: the watch restarts it; say so, plainly
                status = 503
                service.model.went_down(service.model.because or "it stopped answering")
                self.fail(OpenAIError(503, service.model.message() + " Your allowance was not used.",
                                      type="server_error", code="model_restarting"), **{"Retry-After": "30"})
            else:
                status = 502
                self.fail(OpenAIError(502, "The hub's model service does not answer. Tell your instructor; your "
                                           "allowance was not used.", type="server_error",
                                      code="upstream_unreachable"))
        except iostream.StreamClosedError:
            status = 499  # the learner went away mid-stream; what was generated is still counted
        finally:
            # Without the upstream's count: an answer costs its estimate; a stream the learner cut off
            # costs the whole reservation (leaving early must not be a way around the allowance).
            # The upstream's own count is trusted only within what was reserved.
            spent_prompt = _within(usage.get("prompt_tokens", estimate if status in (200, 499) else 0), 0, estimate * 4)
            spent_completion = _within(usage.get("completion_tokens", cap if status == 499 else 0), 0, cap)
            service.ledger.record(Call(learner, request.model, status, spent_prompt, spent_completion,
                                       round((time.monotonic() - started) * 1000, 1), bool(request.stream),
                                       None if status in (200, 499) else "upstream"))
            service.allowances.release(learner, estimate + cap)

    async def _complete(self, params: dict[str, Any]) -> dict[str, int]:
        raw = await self.service.upstream.chat.completions.with_raw_response.create(**params)
        data = raw.http_response.json()
        data["model"] = self.service.model_name
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))
        return data.get("usage") or {}

    async def _stream(self, params: dict[str, Any], wants_usage: bool) -> dict[str, int]:
        params["stream_options"] = {"include_usage": True}  # the ledger needs the count
        usage: dict[str, int] = {}
        async with self.service.upstream.chat.completions.with_streaming_response.create(**params) as response:
            self.set_header("Content-Type", "text/event-stream")
            self.set_header("Cache-Control", "no-cache")
            async for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                chunk = json.loads(payload)
                if chunk.get("usage"):
                    usage = chunk["usage"]
                    if not wants_usage:
                        if not chunk.get("choices"):
                            continue
                        chunk.pop("usage")
                chunk["model"] = self.service.model_name
                self.write(f"data: {json.dumps(chunk)}\n\n")
                await self.flush()
        self.write("data: [DONE]\n\n")
        self.finish()
        return usage

    def _upstream_failed(self, exc: openai.APIStatusError) -> None:
        if exc.status_code in (401, 403):
            return self.fail(OpenAIError(502, "The model service behind the hub refused the hub's own key. Tell your "
                                              "instructor: the key is set on the hub, not in your notebook.",
                                         type="server_error", code="upstream_key_refused"))
        try:
            error = exc.response.json()["error"]
            message = str(error.get("message") or exc.message)[:2000]
            code, param = error.get("code"), error.get("param")
        except (ValueError, KeyError, TypeError, AttributeError):
            message, code, param = exc.message[:2000], None, None
        status = exc.status_code if 400 <= exc.status_code < 600 else 502
        self.fail(OpenAIError(status, message, type="server_error" if status >= 500 else "invalid_request_error",
                              code=code, param=param))


class HealthHandler(web.RequestHandler):
    """GET /health (no login): whether the model behind the gateway answers yet, for probes and start-up."""

    def initialize(self, service: Any) -> None:
        self.service = service

    def get(self) -> None:
        self.finish(self.service.model.as_dict())


def handlers(prefix: str, service: Any) -> list[tuple[str, type, dict[str, Any]]]:
    """Tornado routes of the gateway under the service's prefix."""
    options = {"service": service}
    return [(rf"{prefix}health", HealthHandler, options),
            (rf"{prefix}v1/models/?", ModelsHandler, options),
            (rf"{prefix}v1/chat/completions/?", ChatHandler, options)]

