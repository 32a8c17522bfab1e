"""Errors of the batch runner (defined in marketlab.errors) and the plain-language names of the ways a row can fail."""

from __future__ import annotations

from marketlab.errors import WorkflowInputError, WorkflowSettingsError

STATUSES = ("ok", "repaired", "failed", "skipped_budget")

# error_kind -> how it is named in the run summary.
ERROR_KINDS: dict[str, str] = {
    "input": "the row could not be turned into messages",
    "invalid_json": "the reply was not valid JSON",
    "schema": "the reply did not match the output schema",
    "truncated": "the reply was cut off at the token limit",
    "rules": "the reply broke a rule (length, range or banned word)",
    "refused": "the model refused to answer",
    "rate_limit": "the model service kept saying 'too many requests'",
    "server_error": "the model service kept failing (HTTP 5xx)",
    "timeout": "the model did not answer in time",
    "connection": "the model service could not be reached",
    "rejected": "the model service rejected the request",
    "auth": "the model service rejected the key",
    "budget": "the budget ran out",
    "not_sent": "never answered: the batch expired or was cancelled first",
    "model_stopped": "the built-in model stopped",
}

__all__ = ["ERROR_KINDS", "STATUSES", "WorkflowInputError", "WorkflowSettingsError"]
