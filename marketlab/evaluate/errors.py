"""The error every evaluate function raises for bad input: what is wrong and how to fix it."""

from __future__ import annotations

from marketlab.errors import MarketlabError


class EvaluateInputError(MarketlabError, ValueError):
    """A table, a brand voice or a check given to marketlab.evaluate cannot be used as it is."""

    headline = "❌ The texts could not be checked."
