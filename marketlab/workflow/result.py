"""One row's outcome and the columns the runner adds to every output table."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Columns after the schema's fields, in this order.
META_COLUMNS = ("status", "error", "error_kind", "calls", "retries", "source", "prompt_tokens",
                "completion_tokens", "cost_usd", "latency_s", "wait_s")
SOURCES = ("model", "cache", "checkpoint", "none")


@dataclass
class RowResult:
    """What happened to one input row: its parsed fields (or None), status, reason, tokens, cost, time."""

    fields: dict[str, Any] | None
    status: str
    error: str = ""
    error_kind: str = ""
    calls: int = 0  # requests sent to the model for this row, retries included (cache hits are not calls)
    retries: int = 0
    source: str = "none"  # model, cache (every reply came from the cache), checkpoint or none
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    latency_s: float = 0.0
    wait_s: float = 0.0  # of latency_s: time spent waiting (back-off, a 429 pause, the rpm cap, failed attempts)
    fatal: bool = field(default=False, repr=False)  # the failure will repeat on every row: stop the run

    def meta(self) -> dict[str, Any]:
        """The runner's columns for this row."""
        return {name: getattr(self, name) for name in META_COLUMNS}

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict for the checkpoint."""
        data = asdict(self)
        data.pop("fatal")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RowResult:
        """Rebuild a result read from a checkpoint."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "fatal"}
        return cls(**known)
