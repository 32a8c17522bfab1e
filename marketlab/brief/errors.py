"""The error a brief raises when it cannot be read."""

from __future__ import annotations

from marketlab.errors import MarketlabError


class BriefError(MarketlabError, ValueError):
    """A brief file or text that cannot be read; the message names the field and the fix."""

    headline = "❌ The brief could not be read."
