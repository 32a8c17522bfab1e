"""Who retries, when and how long to wait: the runner, on 429, 5xx, timeouts and lost connections.

The SDK's own retries are switched off for the runner's calls (the runner uses
``client.with_options(max_retries=0)``), so a request is sent at most ``Retries.max_attempts``
times, never attempts x SDK retries. How often and how long: ``settings.Retries``.
"""

from __future__ import annotations

from dataclasses import dataclass

import openai

from ..llm.errors import ModelStoppedDuringCallError

RETRYABLE_STATUS = (408, 409, 429)
FATAL_STATUS = (401, 403)  # a rejected key fails every row the same way: stop the run
NOT_ANSWERED_CODE = "batch_not_answered"  # a Batch API request that expired or was cancelled unanswered
OVER_BUDGET_CODE = "budget_exceeded"  # a Batch API request kept back because the budget could not cover it


@dataclass(frozen=True)
class CallFailure:
    """A request that failed: its kind, whether trying again can help, and the server's retry-after."""

    kind: str
    detail: str
    retryable: bool
    fatal: bool = False
    retry_after: float | None = None


def retry_after_seconds(headers: object) -> float | None:
    """The wait a response asks for, from retry-after-ms or retry-after (seconds), if any."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = get(name)
        if raw:
            try:
                return max(0.0, float(raw) * scale)
            except ValueError:
                continue  # an HTTP date: fall back to exponential backoff
    return None


def classify(err: BaseException) -> CallFailure | None:
    """Name an SDK exception in plain words; None when it is not a failure of the request itself."""
    if isinstance(err, ModelStoppedDuringCallError):  # the built-in model died: every row would fail alike
        return CallFailure("model_stopped", f"{err.problem} {err.fix}", False, fatal=True)
    if isinstance(err, openai.APITimeoutError):  # subclass of APIConnectionError: test it first
        return CallFailure("timeout", "the model did not answer in time", True)
    if isinstance(err, openai.APIConnectionError):
        return CallFailure("connection", "the model service could not be reached", True)
    if isinstance(err, openai.APIStatusError):
        status = err.status_code
        code = _error_code(err)
        if status == 429:
            return CallFailure("rate_limit", "the model service said 'too many requests' (HTTP 429)", True,
                               retry_after=retry_after_seconds(err.response.headers))
        if status >= 500:
            return CallFailure("server_error", f"the model service had an internal error (HTTP {status})", True,
                               retry_after=retry_after_seconds(err.response.headers))
        if status in RETRYABLE_STATUS:
            return CallFailure("server_error", f"the model service asked to try again (HTTP {status})", True,
                               retry_after=retry_after_seconds(err.response.headers))
        if code == f": {NOT_ANSWERED_CODE}":  # our own message (marketlab.run.batch), never the provider's text
            body = err.body if isinstance(err.body, dict) else {}
            inner = body.get("error") if isinstance(body.get("error"), dict) else body
            message = str(inner.get("message") or "never answered").rstrip(".") if isinstance(inner, dict) else ""
            return CallFailure("not_sent", message[:1].lower() + message[1:], False)
        if code == f": {OVER_BUDGET_CODE}":  # a Batch API request the run's budget kept back (marketlab.run.batch)
            return CallFailure("budget", "not sent: the run's budget could not cover it", False)
        if status in FATAL_STATUS:
            return CallFailure("auth", f"the model service rejected the key (HTTP {status}{code})", False, fatal=True)
        if status == 404:
            return CallFailure("rejected", f"the model service does not know this model or address (HTTP 404{code})",
                               False, fatal=True)
        return CallFailure("rejected", f"the model service rejected the request (HTTP {status}{code})", False)
    return None


def _error_code(err: openai.APIStatusError) -> str:
    # Only the short machine code: provider messages can quote part of a rejected key.
    body = err.body if isinstance(err.body, dict) else {}
    inner = body.get("error") if isinstance(body.get("error"), dict) else body
    code = inner.get("code") or inner.get("type") if isinstance(inner, dict) else None
    return f": {str(code)[:60]}" if code else ""
