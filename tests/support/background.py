"""Calls running on threads at once, for tests of servers under concurrent clients."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class Background:
    """Calls running on threads; their results (or errors) by name, and when each finished."""

    def __init__(self, join_seconds: float = 900) -> None:
        self.results: dict[str, Any] = {}
        self.finished: dict[str, float] = {}
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []
        self.join_seconds = join_seconds

    def start(self, name: str, call: Callable[[], Any]) -> None:
        def run() -> None:
            try:
                self.results[name] = call()
                self.finished[name] = time.monotonic()
            except BaseException as exc:  # surfaced by join
                self.errors.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        self.threads.append(thread)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=self.join_seconds)
        assert not self.errors, self.errors
