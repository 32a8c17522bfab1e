"""The one outcome record of a run: what came of every row, whether acceptance was met, and the exit status.

    outcome = Outcome.of_table(rows_in=6, table=out, key="Item Code")
    outcome.exit_code, outcome.headline(), outcome.problem_rows

Every row of the input ends in exactly one of these, counted once:

    ok               the reply was usable at once
    repaired         usable after one repair request
    failed           sent, but no usable reply came back (a broken rule, bad JSON, a refusal, HTTP errors)
    skipped_budget   never sent: the token or cost budget could not cover it
    not_sent         never answered: an expired or cancelled batch, or left out of a trial run (max_rows)
    lost             missing from the output with no reason: a bug in the workflow

The console summary, the output's report and the exit status are all read from this record, so
they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from marketlab.workflow.errors import ERROR_KINDS

from .evaluation import AcceptanceResult
from .exitcodes import ExitCode

USABLE = ("ok", "repaired")
NOT_SENT_KINDS = ("not_sent",)  # failed rows that no model ever answered (an expired or cancelled batch)
STATUS_PREFIX = "status_"  # a notebook that runs two versions writes status_a and status_b
REASON_LIMIT = 300


@dataclass(frozen=True)
class ProblemRow:
    """One row that did not come back usable: its key (as the user's table spells it), what happened and why."""

    key: str
    status: str  # failed, skipped_budget, not_sent or lost
    reason: str


@dataclass
class Outcome:
    """What came of one run, row by row, and against its acceptance criteria."""

    rows_in: int
    ok: int = 0
    repaired: int = 0
    failed: int = 0
    skipped_budget: int = 0
    not_sent: int = 0
    lost: int = 0
    trial_left_out: int = 0  # of not_sent: rows a trial run (max_rows) left out on purpose
    max_rows: int | None = None
    key: str | None = None  # the key column, named as in the user's table
    problem_rows: list[ProblemRow] = field(default_factory=list)
    acceptance: AcceptanceResult | None = None
    acceptance_missed_text: str | None = None  # a notebook that stopped with AcceptanceMissed says why
    stopped: str | None = None  # why the run did not finish (a cell, the workflow or evaluate.py raised)
    reused: int = 0  # rows restored from this output's checkpoint, not sent again
    reused_from: str | None = None
    from_cache: int = 0

    # -- reading a table --------------------------------------------------------------
    def count_table(self, table: pd.DataFrame | None) -> None:
        """Count each row of an output table (status, or status_a/status_b...) and note its problem rows."""
        if table is None or not len(table):
            return
        columns = status_columns(table)
        if not columns:  # the output has no status: every row it has is taken as it is
            self.ok += len(table)
            return
        keys = table[self.key].astype(str).tolist() if self.key and self.key in table.columns else \
            [str(i + 1) for i in range(len(table))]
        for position, (_, row) in enumerate(table.iterrows()):
            status, reason = _row_outcome(row, columns)
            setattr(self, status, getattr(self, status) + 1)
            if status not in USABLE:
                self.problem_rows.append(ProblemRow(keys[position], status, reason))
        if "source" in table.columns:
            self.reused += int((table["source"] == "checkpoint").sum())
            self.from_cache += int((table["source"] == "cache").sum())

    def left_out(self, count: int, keys: list[str], max_rows: int | None) -> None:
        """Input rows missing from the output: left out by a trial run (max_rows), else lost."""
        if count <= 0:
            return
        if max_rows is not None:
            self.not_sent += count
            self.trial_left_out += count
            self.max_rows = max_rows
            status, reason = "not_sent", f"left out of this trial run (max_rows = {max_rows})"
        else:
            self.lost += count
            status, reason = "lost", "missing from the output: the workflow returned no row for it"
        self.problem_rows += [ProblemRow(k, status, reason) for k in keys[:count]]

    # -- what it comes to -------------------------------------------------------------
    @property
    def usable(self) -> int:
        """Rows that came back usable (ok or repaired)."""
        return self.ok + self.repaired

    @property
    def unusable(self) -> int:
        """Rows that did not: failed, skipped by the budget, never answered, or lost."""
        return self.failed + self.skipped_budget + self.not_sent + self.lost

    @property
    def sent(self) -> int:
        """Rows that reached the model (whether or not the reply was usable)."""
        return self.ok + self.repaired + self.failed

    @property
    def acceptance_met(self) -> bool | None:
        """True or False when acceptance criteria were declared, None when there are none."""
        if self.acceptance_missed_text is not None:
            return False
        return None if self.acceptance is None else self.acceptance.met

    @property
    def exit_code(self) -> ExitCode:
        """0 only when every row came back usable and declared acceptance is met."""
        if self.stopped is not None:
            return ExitCode.FAILED
        if self.unusable or self.usable < self.rows_in:
            return ExitCode.ROWS_NOT_USABLE
        if self.acceptance_met is False:
            return ExitCode.ACCEPTANCE_MISSED
        return ExitCode.OK

    def headline(self) -> str:
        """The one summary line: rows by outcome, and acceptance."""
        parts = [f"{self.ok} ok", f"{self.repaired} repaired", f"{self.failed} failed",
                 f"{self.skipped_budget} skipped by the budget", f"{self.not_sent} not sent"]
        if self.lost:
            parts.append(f"{self.lost} lost")
        accepted = {None: "no acceptance criteria declared", True: "acceptance met",
                    False: "acceptance missed"}[self.acceptance_met]
        return (f"Outcome: {self.usable} of {self.rows_in} rows usable ({', '.join(parts)}); {accepted}.")

    def explanations(self) -> list[str]:
        """What each kind of problem means and what to do about it, in plain words."""
        lines = []
        if self.stopped:
            lines.append(f"The run did not finish: {self.stopped}")
        if self.failed:
            lines.append(f"{self.failed} row(s) were sent but no usable reply came back; the output's error column "
                         "says why for each.")
        if self.skipped_budget:
            lines.append(f"{self.skipped_budget} row(s) were never sent: the budget ran out. Raise token_budget "
                         "(or cost_budget) and run again; rows already done are not sent again.")
        if self.trial_left_out:
            lines.append(f"{self.trial_left_out} row(s) were left out on purpose: this was a trial run of the first "
                         f"{self.max_rows} row(s) (max_rows = {self.max_rows}). To run every row, give --param "
                         "max_rows=null (in Jupyter: max_rows = None).")
        expired = self.not_sent - self.trial_left_out
        if expired:
            lines.append(f"{expired} row(s) were never answered: their batch expired or was cancelled before the "
                         "provider answered them. Run the same command again to send them in a new batch.")
        if self.lost:
            lines.append(f"{self.lost} row(s) are missing from the output with no reason given: the workflow "
                         "dropped them. Return one row per input row.")
        if self.acceptance_missed_text:
            lines.append(self.acceptance_missed_text)
        elif self.acceptance is not None and not self.acceptance.met:
            lines.append(self.acceptance.describe())
        return lines

    def as_dict(self) -> dict[str, Any]:
        """The record as plain values (for logs and schedulers)."""
        return {"rows_in": self.rows_in, "ok": self.ok, "repaired": self.repaired, "failed": self.failed,
                "skipped_budget": self.skipped_budget, "not_sent": self.not_sent, "lost": self.lost,
                "acceptance_met": self.acceptance_met, "reused": self.reused, "from_cache": self.from_cache,
                "exit_code": int(self.exit_code)}


def status_columns(table: pd.DataFrame) -> list[str]:
    """The columns that hold a row's status: `status`, or one per version (status_a, status_b, ...)."""
    if "status" in table.columns:
        return ["status"]
    return [str(c) for c in table.columns if str(c).startswith(STATUS_PREFIX)]


def _row_outcome(row: pd.Series, columns: list[str]) -> tuple[str, str]:
    """The outcome of one output row (the worst of its versions) and the reason in plain words."""
    found = []
    for column in columns:
        suffix = column[len("status"):]
        status = row[column]
        kind = str(row.get(f"error_kind{suffix}", "") or "")
        error = row.get(f"error{suffix}", "")
        error = "" if error is None or (isinstance(error, float) and error != error) else str(error)
        version = f"version {suffix.lstrip('_').upper()}: " if suffix else ""
        if status is None or (isinstance(status, float) and status != status):
            found.append(("lost", f"{version}no status: the row was never run"))
        elif status == "skipped_budget" or (status == "failed" and kind == "budget"
                                            and error.lower().startswith("not sent")):
            found.append(("skipped_budget", f"{version}{error or 'never sent: the budget ran out'}"))
        elif status == "failed" and kind in NOT_SENT_KINDS:
            found.append(("not_sent", f"{version}{error or ERROR_KINDS.get(kind, kind)}"))
        elif status == "failed":
            plain = ERROR_KINDS.get(kind, "")
            why = f"{plain + ': ' if plain and error and plain not in error else plain}{error}" or "no usable reply"
            found.append(("failed", f"{version}{why}"))
        else:
            found.append((str(status) if status in USABLE else "failed", ""))
    order = ("lost", "not_sent", "skipped_budget", "failed", "repaired", "ok")
    status = min((s for s, _ in found), key=order.index)
    reasons = "; ".join(r for s, r in found if s not in USABLE and r and not r.endswith(": "))
    return status, reasons[:REASON_LIMIT]


__all__ = ["NOT_SENT_KINDS", "Outcome", "ProblemRow", "USABLE", "status_columns"]
