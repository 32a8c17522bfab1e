"""The error the commissioning toolkit raises when its input cannot be used (defined in marketlab.errors)."""

from __future__ import annotations

from marketlab.errors import CommissionError

__all__ = ["CommissionError"]
