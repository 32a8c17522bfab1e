"""A requests-per-minute cap shared by every worker thread, and a shared pause after a 429."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """Spaces request starts at least 60/rpm seconds apart; hold() pauses everyone (after a 429)."""

    def __init__(self, rpm: float | None = None) -> None:
        self.interval = 60.0 / rpm if rpm else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for this request's slot; returns the seconds waited."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        wait = slot - now
        if wait > 0:
            time.sleep(wait)
        return max(wait, 0.0)

    def hold(self, seconds: float) -> None:
        """No request starts for the next `seconds` (the server asked every client to wait)."""
        with self._lock:
            self._next = max(self._next, time.monotonic() + seconds)
