"""The error the commissioning toolkit raises when its input cannot be used."""

from __future__ import annotations

from marketlab.errors import MarketlabError


class CommissionError(MarketlabError, ValueError):
    """Proposals, extractions, scoring rules or scorecards that cannot be used; says which and how to fix it."""

    headline = "❌ The vendor scorecard could not be built."
