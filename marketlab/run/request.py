"""What a run is asked to do (RunRequest) and what came of it (RunResult).

A leaf of marketlab.run: the runners (notebook, package), the report and job.run() all use these
two types, and this module imports none of them, so every import sits at the top of its module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .batch import BatchOptions, BatchRun
from .evaluation import AcceptanceResult, Evaluation
from .exitcodes import ExitCode
from .outcome import Outcome


@dataclass(frozen=True)
class RunRequest:
    """What `marketlab run` was asked to do."""

    source: Path  # a take-home notebook (.ipynb), or a workflow folder (or its workflow.py)
    input: Path
    output: Path
    params: dict[str, Any] = field(default_factory=dict)
    batch: BatchOptions | None = None  # None: run_batch sends the requests; else the Batch API does
    echo: bool = True  # progress bars and messages on the terminal


@dataclass
class RunResult:
    """What came of a run: its one outcome record (which decides the exit status), the summary and the files."""

    kind: str  # "folder" or "notebook"
    title: str
    rows_in: int
    source: Path | None = None
    rows_out: int = 0
    outcome: Outcome = field(default=None)  # type: ignore[assignment]  # made from rows_in when not given
    output: Path | None = None
    report: Path | None = None
    notebook: Path | None = None
    key: str | None = None  # the key column as the user's table names it
    summary: Any = None  # marketlab.workflow.RunSummary, when the output is a run_batch table
    evaluation: Evaluation | None = None
    batch: BatchRun | None = None
    outputs: pd.DataFrame | None = field(default=None, repr=False)
    notes: list[str] = field(default_factory=list)  # worth knowing, not a problem (e.g. columns not used)

    def __post_init__(self) -> None:
        if self.outcome is None:
            self.outcome = Outcome(self.rows_in, key=self.key)

    @property
    def exit_code(self) -> ExitCode:
        """The exit status, read from the outcome record."""
        return self.outcome.exit_code

    @property
    def acceptance(self) -> AcceptanceResult | None:
        """The acceptance criteria against this run (None when none are declared)."""
        return self.outcome.acceptance

    @acceptance.setter
    def acceptance(self, value: AcceptanceResult | None) -> None:
        self.outcome.acceptance = value

    @property
    def problems(self) -> list[str]:
        """Why the exit status is not 0, in plain words, from the outcome record."""
        return self.outcome.explanations()

    def stop(self, problem: str) -> None:
        """The run did not finish: record why (the first reason is kept)."""
        if self.outcome.stopped is None:
            self.outcome.stopped = problem


__all__ = ["RunRequest", "RunResult"]
