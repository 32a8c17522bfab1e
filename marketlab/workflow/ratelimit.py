"""A requests-per-minute cap shared by every worker thread, and a shared pause after a 429."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """Spaces request starts at least 60/rpm seconds apart; hold() pauses everyone (after a 429).

    A worker takes its slot only when it is about to send: a pause that starts while it waits
    (another worker got a 429) is seen before it sends, never after.
    """

    def __init__(self, rpm: float | None = None) -> None:
        self.interval = 60.0 / rpm if rpm else 0.0
        self._next = 0.0  # earliest start of the next request (rpm spacing)
        self._paused_until = 0.0  # no request starts before this (the server asked everyone to wait)
        self._cond = threading.Condition()

    def acquire(self) -> float:
        """Wait for this request's slot; returns the seconds waited."""
        if not self.interval and not self._paused_until:
            return 0.0  # the common case: no cap and never paused
        started = time.monotonic()
        with self._cond:
            while True:
                now = time.monotonic()
                start = max(self._next, self._paused_until)
                if start <= now:
                    self._next = now + self.interval
                    return now - started
                self._cond.wait(start - now)

    def hold(self, seconds: float) -> None:
        """No request starts for the next `seconds` (the server asked every client to wait)."""
        with self._cond:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)
            self._cond.notify_all()
