"""Headless runs: `marketlab run` on a take-home notebook or a packaged workflow folder.

    from marketlab.run import RunRequest, run
    result = run(RunRequest(Path("my-workflow"), Path("products.csv"), Path("out/results.csv"),
                            params={"columns": {"name": "title"}, "workers": 2}))
    result.exit_code, result.outcome.headline(), result.summary, result.acceptance, result.report

Who does what: inputs (read the table, map columns, the key), params (--param values),
package (a workflow folder), notebook (papermill), batch and replay (--batch-api), evaluation
(evaluate.py and ACCEPTANCE), outcome (the one record of what came of every row, from which the
summary line, the report and the exit status are read), outputs and report (what is written),
exitcodes (the statuses).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .exitcodes import AcceptanceMissed, ExitCode, RunFailedError, RunInputError

# Loaded on first use, so `marketlab --help` and every other command (whose parser includes `run`'s, from
# run/cli.py) do not pay for pandas, scipy and nbformat before they start: three to four core-seconds.
_ON_FIRST_USE = {
    "BatchOptions": "batch", "BatchRun": "batch", "AcceptanceResult": "evaluation", "Criterion": "evaluation",
    "Evaluation": "evaluation", "read_table": "inputs", "run": "job", "Outcome": "outcome", "ProblemRow": "outcome",
    "RunRequest": "request", "RunResult": "request",
}

if TYPE_CHECKING:
    from .batch import BatchOptions, BatchRun
    from .evaluation import AcceptanceResult, Criterion, Evaluation
    from .inputs import read_table
    from .job import run
    from .outcome import Outcome, ProblemRow
    from .request import RunRequest, RunResult


def __getattr__(name: str) -> Any:
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ON_FIRST_USE))


__all__ = ["AcceptanceMissed", "AcceptanceResult", "BatchOptions", "BatchRun", "Criterion", "Evaluation", "ExitCode",
           "Outcome", "ProblemRow", "RunFailedError", "RunInputError", "RunRequest", "RunResult", "read_table", "run"]
