"""Price table used to estimate the cost of a call (US dollars per million tokens)."""

from __future__ import annotations

from .config import LOCAL_MODEL

# (input, output) USD per 1M tokens, list prices as published by the provider.
# Update when the course's gateway bills differently; unknown models are reported as cost unknown.
PRICES_PER_MILLION: dict[str, tuple[float, float]] = {
    LOCAL_MODEL: (0.0, 0.0),
    "scripted": (0.0, 0.0),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
}


def _price(model: str) -> tuple[float, float] | None:
    if model in PRICES_PER_MILLION:
        return PRICES_PER_MILLION[model]
    # Dated snapshots ("gpt-4o-mini-2024-07-18") cost what their family costs: longest prefix wins.
    family = max((name for name in PRICES_PER_MILLION if model.startswith(name + "-")), key=len, default=None)
    return PRICES_PER_MILLION[family] if family else None


def estimate_cost(model: str, prompt_tokens: int | None, completion_tokens: int | None,
                  backend: str | None = None) -> float | None:
    """Estimated USD cost of one call; 0 on the local model, None when the model's price is unknown."""
    if backend in ("local", "scripted"):
        return 0.0
    price = _price(model)
    if price is None or prompt_tokens is None:
        return None
    return (prompt_tokens * price[0] + (completion_tokens or 0) * price[1]) / 1_000_000
