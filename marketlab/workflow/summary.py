"""The run summary, in plain English, computed from the output table alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .errors import ERROR_KINDS, STATUSES, WorkflowInputError
from .result import META_COLUMNS


@dataclass
class RunSummary:
    """Rows by status, failures by kind, this run's calls, tokens, cost and waiting, and what was restored."""

    rows: int
    statuses: dict[str, int]
    failures: dict[str, int]
    calls: int  # requests this run sent (rows restored from a checkpoint are not counted)
    retries: int
    sent: int  # rows this run sent to the model
    from_cache: int
    from_checkpoint: int
    prompt_tokens: int  # this run's
    completion_tokens: int
    cost_usd: float | None
    restored_calls: int = 0  # what the rows restored from a checkpoint took in the earlier run
    restored_tokens: int = 0
    wait_s: float = 0.0  # summed over rows: back-off, 429 pauses, the rpm cap and failed attempts
    timeouts: int = 0  # rows that failed because the model did not answer in time
    wall_s: float | None = None
    model: str | None = None
    budget: str | None = None
    read_timeout_s: float | None = None
    notes: list[str] = field(default_factory=list)
    checked: int = 0  # rows the checks read (the usable ones), when the run had checks
    checks_passed: int = 0  # of those, rows that passed every check
    check_rates: dict[str, float] = field(default_factory=dict)  # pass rate of each check over the checked rows
    unchecked: int = 0  # usable rows in which no check recognised anything to check: never counted as passed

    @property
    def lost(self) -> int:
        """Rows with no status at all: always 0 for a runner output."""
        return self.rows - sum(self.statuses.values())

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens of this run."""
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain values (for logs and monitoring)."""
        return {"rows": self.rows, **{f"rows_{k}": v for k, v in self.statuses.items()},
                "failures": dict(self.failures), "calls": self.calls, "retries": self.retries, "sent": self.sent,
                "from_cache": self.from_cache, "from_checkpoint": self.from_checkpoint,
                "restored_calls": self.restored_calls, "restored_tokens": self.restored_tokens,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "cost_usd": self.cost_usd, "wait_s": self.wait_s, "wall_s": self.wall_s, "model": self.model,
                "checked": self.checked, "checks_passed": self.checks_passed, "unchecked": self.unchecked,
                **{f"check_pass_rate_{k}": v for k, v in self.check_rates.items()}}

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
                         f"{self.statuses.get('failed', 0) / self.rows:.0%}. Usable (ok, repaired) means the reply "
                         "has the right shape and passes the rules, not that it is true: check the facts before "
                         "it is published.")
        if self.unchecked:
            lines.append(f"  Unchecked: {self.unchecked} usable row(s) in which the checks recognised no claim to "
                         "check; they are not counted as passed. Read them yourself, or add a vocabulary pack.")
        if self.check_rates and not self.checked:
            lines.append("  Checks: no usable row to check.")
        elif self.check_rates:
            rates = ", ".join(f"{name} {rate:.0%}" for name, rate in self.check_rates.items())
            lines.append(f"  Checks: {self.checks_passed} of {self.checked} usable row(s) passed every check "
                         f"({self.checks_passed / self.checked:.0%}). Pass rate by check: {rates}.")
        if self.failures:
            parts = [f"{n} × {ERROR_KINDS.get(kind, kind)}" for kind, n in
                     sorted(self.failures.items(), key=lambda kv: (-kv[1], kv[0]))]
            lines.append("  Failures by kind: " + "; ".join(parts) + ".")
        lines.append(f"  This run: {self.calls} model call(s) ({self.retries} retries) for {self.sent} row(s) sent; "
                     f"{self.from_cache} row(s) answered from the cache.")
        if self.from_checkpoint:
            lines.append(f"  Restored from the checkpoint: {self.from_checkpoint} row(s), not sent again (an "
                         f"earlier run made their {self.restored_calls} call(s) and {self.restored_tokens:,} "
                         "tokens).")
        cost = "unknown (no price for this model)" if self.cost_usd is None else f"${self.cost_usd:,.4f}"
        lines.append(f"  Tokens this run: {self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion = "
                     f"{self.tokens:,}; estimated cost {cost}.")
        if self.rows and self.wall_s:
            lines.append(f"  Time: {self.wall_s / self.rows:.2f} s per row on average.")
        if self.wait_s >= 0.5:
            lines.append(f"  Waiting: {self.wait_s:.1f} s of the rows' time went to waiting (retries after errors, "
                         "back-off, pauses the service asked for, the requests-per-minute cap).")
        if self.timeouts:
            limit = f" {self.read_timeout_s:g} s" if self.read_timeout_s else ""
            lines.append(f"  {self.timeouts} row(s) got no answer within the{limit} time limit: a slow model may "
                         "need request_timeout=60, or fewer workers on a model that answers one request at a time.")
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
        raise WorkflowInputError(f"This table is not a workflow output: columns {missing} are missing.",
                                 "Pass the table that run_batch (or your run function) returned.")
    status = results["status"].astype("string")
    statuses = {s: int((status == s).sum()) for s in STATUSES}
    failed = results[status == "failed"]
    failures = {str(k): int(v) for k, v in failed["error_kind"].value_counts().items()}
    restored = results["source"] == "checkpoint"
    now = results[~restored]
    costs = pd.to_numeric(now["cost_usd"], errors="coerce")
    attrs = results.attrs.get("workflow", {})
    return RunSummary(
        rows=len(results), statuses=statuses, failures=failures,
        calls=int(now["calls"].sum()), retries=int(now["retries"].sum()), sent=int((now["calls"] > 0).sum()),
        from_cache=int((results["source"] == "cache").sum()), from_checkpoint=int(restored.sum()),
        prompt_tokens=int(now["prompt_tokens"].sum()), completion_tokens=int(now["completion_tokens"].sum()),
        cost_usd=None if costs.isna().any() else float(costs.sum()),
        restored_calls=int(results.loc[restored, "calls"].sum()),
        restored_tokens=int(results.loc[restored, ["prompt_tokens", "completion_tokens"]].to_numpy().sum()),
        wait_s=round(float(pd.to_numeric(now["wait_s"], errors="coerce").fillna(0).sum()), 3),
        timeouts=int(((status == "failed") & (results["error_kind"] == "timeout") & ~restored).sum()),
        wall_s=attrs.get("wall_s"), model=attrs.get("model"), budget=attrs.get("budget"),
        read_timeout_s=attrs.get("read_timeout_s"), notes=list(attrs.get("notes", [])),
        **_check_counts(results),
    )


def _check_counts(results: pd.DataFrame) -> dict[str, Any]:
    """Rows checked, rows that passed every check, and each check's pass rate (run_batch(..., checks=...))."""
    if "checks" not in results.columns:
        return {}
    checked = results["checks"].isin(["passed", "failed"])
    rates = {}
    for column in results.columns:
        if str(column).startswith("check_") and column != "check_reason":
            values = results.loc[checked, column].astype("boolean")
            rates[str(column)[len("check_"):]] = float(values.mean()) if checked.any() else float("nan")
    return {"checked": int(checked.sum()), "checks_passed": int((results["checks"] == "passed").sum()),
            "check_rates": rates, "unchecked": int((results["checks"] == "unchecked").sum())}


def failure_report(results: pd.DataFrame, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """The rows that did not come back usable, with the kind and reason in plain words."""
    bad = results[results["status"].isin(["failed", "skipped_budget"])]
    keep = [c for c in columns if c in results.columns]
    report = bad[[*keep, "status", "error_kind", "error"]].copy()
    report["what_it_means"] = report["error_kind"].map(lambda k: ERROR_KINDS.get(k, k))
    return report
