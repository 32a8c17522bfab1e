"""Keeping a run within its Budget: a call starts only if its worst case fits in what is left.

Each call reserves its worst case before it is sent (estimated prompt tokens plus max_tokens)
and settles at its real usage as soon as it returns. New rows are admitted in input order; a
repair request waits for the calls in flight to settle before it gives up, and new rows wait
while a repair does. So a row fails for the budget only when, with nothing else in flight, what
is left cannot pay for its repair; then the run stops and the rows not sent are
``skipped_budget``. The same happens when the next row's first call does not fit.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from marketlab.llm import estimate_cost

from .settings import Budget

CHARS_PER_TOKEN_GUESS = 3.0  # cautious: English averages about 4 characters per token
TOKENS_PER_MESSAGE = 8  # chat template overhead


@dataclass(frozen=True)
class Usage:
    """Tokens and dollars of one call or one reservation."""

    tokens: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.tokens + other.tokens, self.cost_usd + other.cost_usd)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.tokens - other.tokens, self.cost_usd - other.cost_usd)


class BudgetMeter:
    """What one run has spent and reserved against its Budget, safe to use from many threads."""

    def __init__(self, model: str, max_tokens_per_call: int, budget: Budget) -> None:
        self.model = model
        self.max_tokens_per_call = max_tokens_per_call
        self.budget = budget
        self.spent = Usage()
        self.reserved = Usage()
        self.restored = Usage()  # spent by an earlier run of the same work (rows from the checkpoint)
        self._chars_per_token = CHARS_PER_TOKEN_GUESS
        self._repairs_waiting = 0
        self._cond = threading.Condition()

    @property
    def limited(self) -> bool:
        """True when any limit is set."""
        return self.budget.limited

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """Estimated dollars of a call (None when the model's price is unknown)."""
        if self.budget.prices is not None:
            return (prompt_tokens * self.budget.prices[0] + completion_tokens * self.budget.prices[1]) / 1_000_000
        return estimate_cost(self.model, prompt_tokens, completion_tokens)

    def estimate(self, messages: list[dict[str, Any]]) -> Usage:
        """Worst case of one call with these messages: estimated prompt plus max_tokens of reply."""
        chars = sum(len(str(m.get("content", ""))) for m in messages)
        prompt = int(chars / self._chars_per_token) + TOKENS_PER_MESSAGE * len(messages)
        return Usage(prompt + self.max_tokens_per_call, self.cost(prompt, self.max_tokens_per_call) or 0.0)

    def learn(self, messages: list[dict[str, Any]], prompt_tokens: int | None) -> None:
        """Tighten the prompt estimate from a real count (keeps the most cautious ratio seen)."""
        chars = sum(len(str(m.get("content", ""))) for m in messages)
        if prompt_tokens and chars:
            with self._cond:
                self._chars_per_token = min(self._chars_per_token, max(chars / prompt_tokens, 1.0))

    def _fits(self, need: Usage) -> bool:
        total = self.spent + self.reserved + need
        if self.budget.tokens is not None and total.tokens > self.budget.tokens:
            return False
        if self.budget.cost_usd is not None and total.cost_usd > self.budget.cost_usd + 1e-12:
            return False
        return True

    def try_reserve(self, need: Usage) -> bool:
        """Reserve a new row's first call if it fits and no repair is waiting; False (nothing reserved) if not."""
        with self._cond:
            if self._repairs_waiting or not self._fits(need):
                return False
            self.reserved = self.reserved + need
            return True

    def reserve_repair(self, need: Usage) -> bool:
        """Reserve a repair call, waiting while calls in flight may still free room; False when none can."""
        with self._cond:
            self._repairs_waiting += 1
            try:
                while not self._fits(need):
                    if self.reserved.tokens <= 0 and self.reserved.cost_usd <= 1e-12:
                        return False  # nothing in flight: the budget really is spent
                    self._cond.wait()
                self.reserved = self.reserved + need
                return True
            finally:
                self._repairs_waiting -= 1
                self._cond.notify_all()

    def settle(self, reserved: Usage, used: Usage) -> None:
        """Release one call's reservation and count what it really used."""
        with self._cond:
            self.reserved = self.reserved - reserved
            self.spent = self.spent + used
            self._cond.notify_all()

    def add_restored(self, used: Usage) -> None:
        """Count spending from an earlier, interrupted run of the same work (restored from a checkpoint)."""
        with self._cond:
            self.spent = self.spent + used
            self.restored = self.restored + used

    def left(self) -> str:
        """What is left of the budget, in words."""
        tokens, usd = self.budget.tokens, self.budget.cost_usd
        return _words(None if tokens is None else max(0, tokens - self.spent.tokens),
                      None if usd is None else max(0.0, usd - self.spent.cost_usd))

    def describe(self) -> str:
        """The limits in words."""
        return _words(self.budget.tokens, self.budget.cost_usd)


def _words(tokens: int | None, usd: float | None) -> str:
    parts = ([f"{tokens:,} tokens"] if tokens is not None else []) + ([f"${usd:,.4f}"] if usd is not None else [])
    return " and ".join(parts) or "no limit"
