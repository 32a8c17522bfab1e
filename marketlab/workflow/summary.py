"""The run summary, in plain English, computed from the output table alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .errors import ERROR_KINDS, STATUSES
from .result import META_COLUMNS


@dataclass
class RunSummary:
    """Rows by status, failures by kind, calls, tokens, cost and time of one run."""

    rows: int
    statuses: dict[str, int]
    failures: dict[str, int]
    calls: int
    retries: int
    from_cache: int
    from_checkpoint: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    wall_s: float | None = None
    model: str | None = None
    budget: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        """Rows with no status at all: always 0 for a runner output."""
        return self.rows - sum(self.statuses.values())

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain values (for logs and monitoring)."""
        return {"rows": self.rows, **{f"rows_{k}": v for k, v in self.statuses.items()},
                "failures": dict(self.failures), "calls": self.calls, "retries": self.retries,
                "from_cache": self.from_cache, "from_checkpoint": self.from_checkpoint,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "cost_usd": self.cost_usd, "wall_s": self.wall_s, "model": self.model}

    def __str__(self) -> str:
        took = f" in {self.wall_s:.1f} s" if self.wall_s is not None else ""
        model = f" with {self.model}" if self.model else ""
        lines = [f"Workflow run: {self.rows} rows{took}{model}."]
        counts = [f"{self.statuses.get(s, 0)} {label}" for s, label in
                  (("ok", "ok"), ("repaired", "repaired"), ("failed", "failed"),
                   ("skipped_budget", "skipped (budget)"))]
        lines.append("  Results: " + ", ".join(counts) + ".")
        if self.rows:
            usable = self.statuses.get("ok", 0) + self.statuses.get("repaired", 0)
            lines.append(f"  Usable rate: {usable / self.rows:.0%} of rows; failure rate: "
                         f"{self.statuses.get('failed', 0) / self.rows:.0%}.")
        if self.failures:
            parts = [f"{n} × {ERROR_KINDS.get(kind, kind)}" for kind, n in
                     sorted(self.failures.items(), key=lambda kv: (-kv[1], kv[0]))]
            lines.append("  Failures by kind: " + "; ".join(parts) + ".")
        lines.append(f"  Model calls: {self.calls} ({self.retries} retries); rows answered from the cache: "
                     f"{self.from_cache}; rows restored from a checkpoint: {self.from_checkpoint}.")
        cost = "unknown (no price for this model)" if self.cost_usd is None else f"${self.cost_usd:,.4f}"
        lines.append(f"  Tokens: {self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion = "
                     f"{self.tokens:,}; estimated cost {cost}.")
        if self.rows and self.wall_s:
            lines.append(f"  Time: {self.wall_s / self.rows:.2f} s per row on average.")
        if self.budget:
            lines.append(f"  Budget: {self.budget}.")
        lines += [f"  Note: {note}" for note in self.notes]
        return "\n".join(lines)

    def show(self) -> None:
        """Print the summary."""
        print(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def summarize(results: pd.DataFrame) -> RunSummary:
    """The summary of a runner output table (run details such as wall time come from its attrs)."""
    missing = [c for c in META_COLUMNS if c not in results.columns]
    if missing:
        raise ValueError(f"This table is not a workflow output: columns {missing} are missing. "
                         "Pass the table that run_batch (or your run function) returned.")
    status = results["status"].astype("string")
    statuses = {s: int((status == s).sum()) for s in STATUSES}
    failed = results[status == "failed"]
    failures = {str(k): int(v) for k, v in failed["error_kind"].value_counts().items()}
    costs = pd.to_numeric(results["cost_usd"], errors="coerce")
    attrs = results.attrs.get("workflow", {})
    return RunSummary(
        rows=len(results), statuses=statuses, failures=failures,
        calls=int(results["calls"].sum()), retries=int(results["retries"].sum()),
        from_cache=int((results["source"] == "cache").sum()),
        from_checkpoint=int((results["source"] == "checkpoint").sum()),
        prompt_tokens=int(results["prompt_tokens"].sum()), completion_tokens=int(results["completion_tokens"].sum()),
        cost_usd=None if costs.isna().any() else float(costs.sum()),
        wall_s=attrs.get("wall_s"), model=attrs.get("model"), budget=attrs.get("budget"),
        notes=list(attrs.get("notes", [])),
    )


def failure_report(results: pd.DataFrame, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """The rows that did not come back usable, with the kind and reason in plain words."""
    bad = results[results["status"].isin(["failed", "skipped_budget"])]
    keep = [c for c in columns if c in results.columns]
    report = bad[[*keep, "status", "error_kind", "error"]].copy()
    report["what_it_means"] = report["error_kind"].map(lambda k: ERROR_KINDS.get(k, k))
    return report
