"""Errors of the model layer: each one says what is wrong and how to fix it.

All but one are defined in marketlab.errors and re-exported here; ModelStoppedDuringCallError is
defined here because it is also an openai.OpenAIError, and marketlab.errors imports nothing
outside the standard library.
"""

from __future__ import annotations

import openai

from ..errors import LLMSetupError, ModelFileMissingError, ModelStoppedError, PortTakenError, UsageError


class ModelStoppedDuringCallError(ModelStoppedError, openai.OpenAIError):
    """A call found the built-in model's server dead. An `openai.OpenAIError`, so the SDK passes it on
    as it is (no retries, no "Connection error." in its place) and code that catches the SDK's errors
    still catches it; IPython shows its problem and fix instead of a traceback."""


__all__ = ["LLMSetupError", "ModelFileMissingError", "ModelStoppedDuringCallError", "ModelStoppedError",
           "PortTakenError", "UsageError"]
