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

from .batch import BatchOptions, BatchRun
from .evaluation import AcceptanceResult, Criterion, Evaluation
from .exitcodes import AcceptanceMissed, ExitCode, RunFailedError, RunInputError
from .inputs import read_table
from .job import run
from .outcome import Outcome, ProblemRow
from .request import RunRequest, RunResult

__all__ = ["AcceptanceMissed", "AcceptanceResult", "BatchOptions", "BatchRun", "Criterion", "Evaluation", "ExitCode",
           "Outcome", "ProblemRow", "RunFailedError", "RunInputError", "RunRequest", "RunResult", "read_table", "run"]
