"""A packaged workflow folder, run headless: workflow.py + brief.yaml, and evaluate.py when there is one.

    my-workflow/
      workflow.py    run(df, client, **overrides) -> results   (saved by Lab 2, or the capstone)
      brief.yaml     the brief, shown at the top of the report
      evaluate.py    evaluate(outputs_df, products_df) and ACCEPTANCE   (saved by Lab 3; optional)

The workflow is imported as the grader imports it (marketlab.workflow.load_workflow), run on the
input table, its output written, evaluated and reported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import openai
import pandas as pd

from marketlab.errors import MarketlabError
from marketlab.workflow import META_COLUMNS, RunSettings, WorkflowInputError, load_workflow, summarize

from . import inputs, outputs
from .batch import REPLAY_SETTINGS, BudgetGate, run_through_batches
from .evaluation import acceptance_of, from_evaluator, from_run_checks
from .exitcodes import ExitCode, RunFailedError, RunInputError
from .job import RunRequest, RunResult
from .params import FolderParams, folder_params
from .report import write_report

WORKFLOW_FILE = "workflow.py"
EVALUATE_FILE = "evaluate.py"
BRIEF_FILE = "brief.yaml"
USABLE = ("ok", "repaired")


@dataclass(frozen=True)
class Package:
    """A workflow folder, imported: its workflow, its evaluator (or None) and its brief (or None)."""

    folder: Path
    workflow: ModuleType
    evaluator: ModuleType | None
    brief: Any  # marketlab.brief.Brief

    @property
    def title(self) -> str:
        """The brief's title, or the folder's name."""
        return str(getattr(self.brief, "title", "") or self.folder.name)


def _import(path: Path, load: Any, needs: str) -> ModuleType:
    try:
        module = load(path)
    except MarketlabError:
        raise
    except Exception as err:  # learner code: a syntax error, an import that fails, ...
        line = f" (line {err.lineno})" if isinstance(err, SyntaxError) and err.lineno else ""
        raise RunInputError(f"{path.name} cannot be imported: {type(err).__name__}{line}: "
                            f"{str(err).strip().splitlines()[0][:300] if str(err).strip() else ''}",
                            f"Open the notebook that saved {path.name}, fix the cell and save it again.") from None
    if not callable(getattr(module, needs, None)):
        raise RunInputError(f"{path.name} has no function {needs}().",
                            f"Save {path.name} again from its notebook: it defines {needs}().")
    return module


def load_package(source: str | Path) -> Package:
    """Import a workflow folder (or the folder of the workflow.py given); a missing or broken part is an error."""
    from marketlab.brief import Brief
    from marketlab.evaluate.artifact import load_evaluator

    source = Path(source)
    folder = source.parent if source.is_file() and source.suffix == ".py" else source
    if not folder.is_dir():
        raise RunInputError(f"{source} is neither a workflow folder nor a notebook (.ipynb).",
                            f"Give the folder that holds {WORKFLOW_FILE}, or a take-home notebook.")
    workflow_path = folder / WORKFLOW_FILE
    if not workflow_path.is_file():
        raise RunInputError(f"The folder {folder} has no {WORKFLOW_FILE}.",
                            f"Put the {WORKFLOW_FILE} that Lab 2 saved (or your capstone's) in the folder.")
    workflow = _import(workflow_path, load_workflow, "run")
    evaluate_path = folder / EVALUATE_FILE
    evaluator = _import(evaluate_path, load_evaluator, "evaluate") if evaluate_path.is_file() else None
    brief_path = folder / BRIEF_FILE
    brief = Brief.load(brief_path) if brief_path.is_file() else None
    return Package(folder, workflow, evaluator, brief)


@dataclass(frozen=True)
class _Plan:
    """How the workflow is called: its keyword arguments and the settings they come to."""

    kwargs: dict[str, Any]
    settings: RunSettings
    model: str


def _plan(package: Package, params: FolderParams, key: str, batch: bool, echo: bool) -> _Plan:
    from marketlab import llm
    from marketlab.llm.prices import batch_prices

    base = getattr(package.workflow, "SETTINGS", None)
    base = base if isinstance(base, RunSettings) else None
    kwargs: dict[str, Any] = dict(params.settings)
    before = base.include if base is not None else ()
    kwargs["include"] = list(dict.fromkeys([*before, *(kwargs.get("include") or []), key]))
    model = params.model or getattr(package.workflow, "MODEL", None) or llm.model_name()
    if params.model:
        kwargs["model"] = params.model
    if batch:
        listed = kwargs.get("prices") or (base.budget.prices if base is not None else None)
        prices = batch_prices(model, tuple(listed) if listed else None)
        if prices is not None:
            kwargs["prices"] = prices  # costs and the cost budget at the batch price
        kwargs.update(REPLAY_SETTINGS)
    else:
        kwargs.update(show_summary=False, progress=echo)
    settings = RunSettings.build(base, **{k: v for k, v in kwargs.items() if k != "model"})
    return _Plan(kwargs, settings, model)


def _call(package: Package, table: pd.DataFrame, client: openai.OpenAI, kwargs: dict[str, Any]) -> pd.DataFrame:
    """workflow.run(table, client, **kwargs), with its errors in words that fit the command line."""
    try:
        return package.workflow.run(table, client, **kwargs)
    except WorkflowInputError as err:
        fix = err.fix
        if "column" in err.problem:
            fix = ("Map one of your columns onto it: --param 'columns={name_it_needs: your_column}', or add the "
                   "column to the input file.")
        raise RunInputError(err.problem, fix) from None
    except (MarketlabError, KeyboardInterrupt):
        raise
    except Exception as err:  # a bug in the learner's workflow: one line, no stack trace
        text = str(err).strip().splitlines()[0][:300] if str(err).strip() else "(no message)"
        raise RunFailedError(f"The workflow stopped with {type(err).__name__}: {text}",
                             f"Run {WORKFLOW_FILE}'s run() in a notebook on a few rows of this input to see "
                             "where.") from None


def run_package(package: Package, request: RunRequest, client: openai.OpenAI | None = None) -> RunResult:
    """Run a workflow folder on the input: output, summary, evaluation, acceptance and report."""
    started = time.perf_counter()
    params = folder_params(request.params)
    output = outputs.check_output(request.output, (Path(request.input),))
    table = inputs.map_columns(inputs.read_table(request.input), params.columns)
    key = inputs.find_key(table, params.key)
    inputs.check_key(table, key)
    products = table if params.products is None else inputs.read_table(params.products, "products")
    plan = _plan(package, params, key, request.batch is not None, request.echo)
    if client is None:
        from marketlab import llm

        client = llm.client()
    result = RunResult("folder", package.title, len(table), package.folder, output=output, key=key)
    if request.batch is not None:
        out, result.batch = run_through_batches(
            lambda replay: _call(package, table, replay, plan.kwargs), client, outputs.sidecar(output, "batch"),
            request.batch, BudgetGate(plan.settings, plan.model), request.echo)
    else:
        out = _call(package, table, client, plan.kwargs)
    out = _checked_output(out, table, key, result)
    if result.batch is not None and "workflow" in out.attrs:
        details = dict(out.attrs["workflow"])
        details["wall_s"] = round(time.perf_counter() - started, 3)
        details["notes"] = [*details.get("notes", []), *result.batch.notes,
                            f"Sent through the Batch API ({', '.join(result.batch.batch_ids) or 'no new batch'}); "
                            "costs are at the batch price."]
        out.attrs = {**out.attrs, "workflow": details}
    outputs.write_table(out, output)
    result.outputs, result.rows_out = out, len(out)
    if set(META_COLUMNS) <= set(out.columns):
        result.summary = summarize(out)
        usable = int(out["status"].isin(USABLE).sum())
        if usable == 0:
            result.fail(ExitCode.FAILED, f"Not one of the {len(out)} rows came back usable.")
    _evaluate(package, out, products, result)
    result.report = write_report(result, outputs.sidecar(output, "report"), package.brief)
    return result


def _checked_output(out: Any, table: pd.DataFrame, key: str, result: RunResult) -> pd.DataFrame:
    """The workflow's output as a table with the key column; lost rows are recorded."""
    if not isinstance(out, pd.DataFrame):
        raise RunFailedError(f"The workflow's run() returned a {type(out).__name__}, not a table.",
                             "Return the table run_batch gives: one row per input row.")
    if len(out) < len(table):
        result.fail(ExitCode.ROWS_LOST, f"The output has {len(out)} rows; the input has {len(table)}: "
                                        f"{len(table) - len(out)} row(s) lost.")
    elif "status" in out.columns and out["status"].isna().any():
        result.fail(ExitCode.ROWS_LOST, f"{int(out['status'].isna().sum())} output row(s) have no status: they "
                                        "were never run.")
    if key not in out.columns and len(out) == len(table):
        out = out.copy()
        out.insert(0, key, table[key].to_numpy())
    return out


def _evaluate(package: Package, out: pd.DataFrame, products: pd.DataFrame, result: RunResult) -> None:
    """Evaluate the output (evaluate.py, else the workflow's own checks) and hold it to ACCEPTANCE."""
    try:
        if package.evaluator is not None:
            result.evaluation = from_evaluator(package.evaluator, out.reset_index(drop=True), products)
            result.acceptance = acceptance_of(getattr(package.evaluator, "ACCEPTANCE", None), result.evaluation)
        else:
            result.evaluation = from_run_checks(out, result.key)
    except RunFailedError as err:
        result.fail(ExitCode.FAILED, f"{err.problem} {err.fix}".strip())
        return
    if result.acceptance is not None and not result.acceptance.met:
        result.fail(ExitCode.ACCEPTANCE_MISSED, result.acceptance.describe())


__all__ = ["BRIEF_FILE", "EVALUATE_FILE", "Package", "WORKFLOW_FILE", "load_package", "run_package"]
