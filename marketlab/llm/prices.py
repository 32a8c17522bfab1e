"""Price table used to estimate the cost of a call (US dollars per million tokens)."""

from __future__ import annotations

from collections.abc import Mapping

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

# The Batch API bills a share of the list price: requests answered within 24 hours instead of at once.
# OpenAI charges half for every model above; a model listed here is billed at its own share.
BATCH_DISCOUNT = 0.5
BATCH_DISCOUNTS: dict[str, float] = {}


def _family(model: str, table: Mapping[str, object]) -> str | None:
    if model in table:
        return model
    # Dated snapshots ("gpt-4o-mini-2024-07-18") cost what their family costs: longest prefix wins.
    return max((name for name in table if model.startswith(name + "-")), key=len, default=None)


def _price(model: str) -> tuple[float, float] | None:
    family = _family(model, PRICES_PER_MILLION)
    return PRICES_PER_MILLION[family] if family else None


def batch_share(model: str) -> float:
    """The share of the list price a Batch API request of this model costs (0.5: half price)."""
    family = _family(model, BATCH_DISCOUNTS)
    return BATCH_DISCOUNTS[family] if family else BATCH_DISCOUNT


def batch_prices(model: str, list_prices: tuple[float, float] | None = None) -> tuple[float, float] | None:
    """(input, output) USD per 1M tokens through the Batch API: `list_prices` (or the table's) at the batch share."""
    price = list_prices if list_prices is not None else _price(model)
    if price is None:
        return None
    share = batch_share(model)
    return price[0] * share, price[1] * share


def estimate_cost(model: str, prompt_tokens: int | None, completion_tokens: int | None,
                  backend: str | None = None, *, batch: bool = False) -> float | None:
    """Estimated USD cost of one call; 0 on the local model, None when the model's price is unknown.

    batch=True prices a request sent through the Batch API (see BATCH_DISCOUNT).
    """
    if backend in ("local", "scripted"):
        return 0.0
    price = batch_prices(model) if batch else _price(model)
    if price is None or prompt_tokens is None:
        return None
    return (prompt_tokens * price[0] + (completion_tokens or 0) * price[1]) / 1_000_000
