"""A token or cost budget: a call starts only if its worst case fits in what is left.

Each call reserves its worst case before it is sent (estimated prompt tokens plus max_tokens)
and settles at its real usage when it returns. When the next row does not fit even with no call
in flight, the run stops cleanly and the remaining rows are marked ``skipped_budget``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from marketlab.llm import estimate_cost

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


class Budget:
    """Limits on total tokens and/or estimated dollars for one run, safe to use from many threads."""

    def __init__(self, model: str, max_tokens_per_call: int, token_budget: int | None = None,
                 cost_budget_usd: float | None = None, prices: tuple[float, float] | None = None) -> None:
        self.model = model
        self.max_tokens_per_call = max_tokens_per_call
        self.token_budget = token_budget
        self.cost_budget_usd = cost_budget_usd
        self.prices = prices
        self.spent = Usage()
        self.reserved = Usage()
        self._chars_per_token = CHARS_PER_TOKEN_GUESS
        self._lock = threading.Lock()

    @property
    def limited(self) -> bool:
        """True when any limit is set."""
        return self.token_budget is not None or self.cost_budget_usd is not None

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """Estimated dollars of a call (None when the model's price is unknown)."""
        if self.prices is not None:
            return (prompt_tokens * self.prices[0] + completion_tokens * self.prices[1]) / 1_000_000
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
            with self._lock:
                self._chars_per_token = min(self._chars_per_token, max(chars / prompt_tokens, 1.0))

    def _fits(self, need: Usage) -> bool:
        total = self.spent + self.reserved + need
        if self.token_budget is not None and total.tokens > self.token_budget:
            return False
        if self.cost_budget_usd is not None and total.cost_usd > self.cost_budget_usd + 1e-12:
            return False
        return True

    def try_reserve(self, need: Usage) -> bool:
        """Reserve `need` if it fits beside what is spent and reserved; False (nothing reserved) if not."""
        with self._lock:
            if not self._fits(need):
                return False
            self.reserved = self.reserved + need
            return True

    def settle(self, reserved: Usage, used: Usage) -> None:
        """Release a reservation and count what was really used."""
        with self._lock:
            self.reserved = self.reserved - reserved
            self.spent = self.spent + used

    def add_spent(self, used: Usage) -> None:
        """Count spending from an earlier, interrupted run of the same work (restored from a checkpoint)."""
        with self._lock:
            self.spent = self.spent + used

    def describe(self) -> str:
        """The limits in words."""
        parts = []
        if self.token_budget is not None:
            parts.append(f"{self.token_budget:,} tokens")
        if self.cost_budget_usd is not None:
            parts.append(f"${self.cost_budget_usd:,.4f}")
        return " and ".join(parts) or "no limit"
