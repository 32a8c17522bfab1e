"""The error every evaluate function raises for bad input (defined in marketlab.errors)."""

from __future__ import annotations

from marketlab.errors import EvaluateInputError

__all__ = ["EvaluateInputError"]
