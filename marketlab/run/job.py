"""One headless run: what to run on what (RunRequest), what came of it (RunResult), and `run()` itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pandas as pd

from .batch import BatchOptions, BatchRun
from .evaluation import AcceptanceResult, Evaluation
from .exitcodes import ExitCode, RunInputError
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


def run(request: RunRequest, client: openai.OpenAI | None = None) -> RunResult:
    """Run a notebook or a workflow folder on the input and write the output and its report.

    client: the model client for a workflow folder (default: marketlab.llm.client(), the active
    backend); a notebook makes its own. Problems that stop the run before it starts raise a
    MarketlabError (exit status 2); everything else is in the RunResult.
    """
    source = Path(request.source)
    if source.suffix.lower() == ".ipynb":
        from .notebook import run_notebook

        if request.batch is not None:
            raise RunInputError("--batch-api runs a workflow folder; a notebook sends its own requests.",
                                "Leave --batch-api out, or run the notebook's workflow folder with --batch-api.")
        return run_notebook(request)
    from .package import load_package, run_package

    return run_package(load_package(source), request, client)


__all__ = ["RunRequest", "RunResult", "run"]
