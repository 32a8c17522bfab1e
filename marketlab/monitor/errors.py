"""The error the monitor raises: what is wrong with the table, the settings or a rule, and how to fix it."""

from __future__ import annotations

from marketlab.errors import MarketlabError


class MonitorError(MarketlabError, ValueError):
    """A weekly table, a setting or an alert rule the monitor cannot use."""

    headline = "❌ The monitor cannot run."
