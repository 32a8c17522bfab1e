"""Fair admission of waiting requests to the model's decoding slots, learner by learner.

Requests wait in one FIFO queue per learner (OpenAI's `user` field; none is one anonymous learner).
When a slot frees, the next request comes from the learner with the fewest requests already being
decoded, ties going to the learner served longest ago. A learner who sends many requests at once
(or one very long one) therefore takes at most their share of slots whenever others are waiting.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Generic, TypeVar

ANONYMOUS = ""

T = TypeVar("T")


class FairQueue(Generic[T]):
    """Per-learner FIFO queues, popped fewest-running-first, then round robin (not thread-safe)."""

    def __init__(self) -> None:
        self._waiting: OrderedDict[str, deque[T]] = OrderedDict()
        self._running: dict[str, int] = {}
        self._last_served: dict[str, int] = {}
        self._clock = itertools.count()

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._waiting.values())

    def push(self, learner: str, item: T) -> None:
        """Queue a request of this learner behind the learner's earlier ones."""
        self._waiting.setdefault(learner, deque()).append(item)

    def pop(self) -> tuple[str, T] | None:
        """The next request to admit and its learner (counted as running until `finished`), or None."""
        if not self._waiting:
            return None
        learner = min(self._waiting, key=lambda name: (self._running.get(name, 0), self._last_served.get(name, -1)))
        queue = self._waiting[learner]
        item = queue.popleft()
        if not queue:
            del self._waiting[learner]
        self._running[learner] = self._running.get(learner, 0) + 1
        self._last_served[learner] = next(self._clock)
        return learner, item

    def finished(self, learner: str) -> None:
        """A request admitted for this learner has left its slot."""
        left = self._running.get(learner, 0) - 1
        if left > 0:
            self._running[learner] = left
        else:
            self._running.pop(learner, None)
            if learner not in self._waiting:
                self._last_served.pop(learner, None)

    def remove(self, dropped: Callable[[T], bool]) -> list[T]:
        """Take out waiting requests for which `dropped` is true (their clients went away) and return them."""
        removed: list[T] = []
        for learner in list(self._waiting):
            queue = self._waiting[learner]
            kept = deque(item for item in queue if not dropped(item))
            removed += [item for item in queue if dropped(item)]
            if kept:
                self._waiting[learner] = kept
            else:
                del self._waiting[learner]
        return removed
