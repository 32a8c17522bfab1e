"""The errors a brief raises when it cannot be read, linted or compiled (defined in marketlab.errors)."""

from __future__ import annotations

from marketlab.errors import BriefError, LintRuleError, RecordError

__all__ = ["BriefError", "LintRuleError", "RecordError"]
