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
    """What came of a run: the exit status and why, the tables' sizes, the summary, evaluation and files."""

    kind: str  # "folder" or "notebook"
    title: str
    rows_in: int
    source: Path | None = None
    rows_out: int = 0
    exit_code: ExitCode = ExitCode.OK
    problems: list[str] = field(default_factory=list)  # why the exit status is not OK, in plain words
    output: Path | None = None
    report: Path | None = None
    notebook: Path | None = None
    key: str | None = None
    summary: Any = None  # marketlab.workflow.RunSummary, when the output is a run_batch table
    evaluation: Evaluation | None = None
    acceptance: AcceptanceResult | None = None
    batch: BatchRun | None = None
    outputs: pd.DataFrame | None = field(default=None, repr=False)

    def fail(self, code: ExitCode, problem: str) -> None:
        """Record a problem; the exit status is that of the first, most serious, problem found."""
        self.problems.append(problem)
        if self.exit_code is ExitCode.OK or _rank(code) < _rank(self.exit_code):
            self.exit_code = code


def _rank(code: ExitCode) -> int:
    order = (ExitCode.INTERRUPTED, ExitCode.BAD_INPUT, ExitCode.FAILED, ExitCode.ROWS_LOST, ExitCode.ACCEPTANCE_MISSED)
    return order.index(code) if code in order else len(order)


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
