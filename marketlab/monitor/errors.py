"""The error the monitor raises for a table, a setting or a rule it cannot use (defined in marketlab.errors)."""

from __future__ import annotations

from marketlab.errors import MonitorError

__all__ = ["MonitorError"]
