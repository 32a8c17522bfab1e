"""One headless run: `run()` sends a RunRequest to the notebook or the folder runner and returns its RunResult.

RunRequest and RunResult live in marketlab.run.request, which the runners import too; they are
re-exported here, where they were first defined.
"""

from __future__ import annotations

from pathlib import Path

import openai

from .exitcodes import RunInputError
from .notebook import run_notebook
from .package import load_package, run_package
from .request import RunRequest, RunResult


def run(request: RunRequest, client: openai.OpenAI | None = None) -> RunResult:
    """Run a notebook or a workflow folder on the input and write the output and its report.

    client: the model client for a workflow folder (default: marketlab.llm.client(), the active
    backend); a notebook makes its own. Problems that stop the run before it starts raise a
    MarketlabError (exit status 2); everything else is in the RunResult.
    """
    source = Path(request.source)
    if source.suffix.lower() == ".ipynb":
        if request.batch is not None:
            raise RunInputError("--batch-api runs a workflow folder; a notebook sends its own requests.",
                                "Leave --batch-api out, or run the notebook's workflow folder with --batch-api.")
        return run_notebook(request)
    return run_package(load_package(source), request, client)


__all__ = ["RunRequest", "RunResult", "run"]
