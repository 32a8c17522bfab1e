"""A packaged workflow folder, run headless: workflow.py + brief.yaml, and evaluate.py when there is one.

    my-workflow/
      workflow.py    run(df, client, **overrides) -> results   (saved by Lab 2, or the capstone)
      brief.yaml     the brief, shown at the top of the report
      evaluate.py    evaluate(outputs_df, products_df) and ACCEPTANCE   (saved by Lab 3; optional)

The workflow is imported as the grader imports it (marketlab.workflow.load_workflow), run on the
input table, its output written, evaluated and reported.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import openai
import pandas as pd

from marketlab import llm
from marketlab.brief import Brief
from marketlab.errors import MarketlabError
from marketlab.evaluate.artifact import load_evaluator
from marketlab.evaluate.facts import PRODUCT_FIELDS
from marketlab.llm.prices import batch_prices
from marketlab.workflow import META_COLUMNS, RunSettings, WorkflowInputError, load_workflow, summarize

from . import inputs, outputs
from .batch import REPLAY_SETTINGS, BudgetGate, run_through_batches
from .evaluation import acceptance_of, from_evaluator, from_run_checks
from .exitcodes import RunFailedError, RunInputError
from .outcome import NOT_SENT_KINDS
from .params import FolderParams, folder_params
from .report import write_report
from .request import RunRequest, RunResult

WORKFLOW_FILE = "workflow.py"
EVALUATE_FILE = "evaluate.py"
BRIEF_FILE = "brief.yaml"


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


def _plan(package: Package, params: FolderParams, key: str, batch: bool, echo: bool, output: Path) -> _Plan:
    base = getattr(package.workflow, "SETTINGS", None)
    base = base if isinstance(base, RunSettings) else None
    kwargs: dict[str, Any] = dict(params.settings)
    before = base.include if base is not None else ()
    kwargs["include"] = list(dict.fromkeys([*before, *(kwargs.get("include") or []), key]))
    model = params.model or getattr(package.workflow, "MODEL", None) or llm.model_name()
    if params.model:
        kwargs["model"] = params.model
    inherited = base.storage.checkpoint if base is not None else True
    if kwargs.get("checkpoint", inherited) is True and not batch:
        # Saved rows belong to this output: another output path starts afresh instead of reusing them.
        kwargs["checkpoint"] = str(outputs.sidecar(output, "checkpoint").resolve())
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


def _call(package: Package, table: pd.DataFrame, client: openai.OpenAI, kwargs: dict[str, Any],
          params: FolderParams) -> pd.DataFrame:
    """workflow.run(table, client, **kwargs), with its errors in words that fit the command line."""
    try:
        return package.workflow.run(table, client, **kwargs)
    except WorkflowInputError as err:
        if "column" in err.problem:
            raise RunInputError(*mapping_help(package, table, params, err.problem)) from None
        raise RunInputError(err.problem, err.fix) from None
    except (MarketlabError, KeyboardInterrupt):
        raise
    except Exception as err:  # a bug in the learner's workflow: one line, no stack trace
        text = str(err).strip().splitlines()[0][:300] if str(err).strip() else "(no message)"
        raise RunFailedError(f"The workflow stopped with {type(err).__name__}: {text}",
                             f"Run {WORKFLOW_FILE}'s run() in a notebook on a few rows of this input to see "
                             "where.") from None


def workflow_columns(package: Package) -> dict[str, str]:
    """The columns the workflow reads, each with what it is for: required, or the check it feeds."""
    described: dict[str, str] = {}
    settings = getattr(package.workflow, "SETTINGS", None)
    for name in getattr(settings, "required_columns", ()) or ():
        described[str(name)] = "required: the workflow stops without it"
    checks = [getattr(c, "name", "") for module in (package.workflow, package.evaluator) if module is not None
              for c in (getattr(module, "CHECKS", None) or [])]
    if "faithfulness" in checks:
        for name in PRODUCT_FIELDS:
            what = {"name": "named in each request; feeds the faithfulness check",
                    "not_true": "the product's limits ('do not say'): sent with each request and feeds the "
                                "faithfulness check"}.get(name, "sent with each request; feeds the faithfulness "
                                                                "check")
            described.setdefault(name, f"optional: {what}")
    return described


def unused_columns(package: Package, table: pd.DataFrame, params: FolderParams, key: str) -> str | None:
    """A note when the user's table lacks columns the workflow reads and has columns it does not read."""
    needed = workflow_columns(package)
    lacking = [name for name in needed if name not in table.columns and name != key]
    known = set(needed) | {key} | set(params.columns)
    theirs = [str(c) for c in table.columns if str(c) not in known]
    if not lacking or not theirs:
        return None
    mapping = {**params.columns, lacking[0]: "<your column>"}
    line = "--param 'columns={" + ", ".join(f"{k}: {v}" for k, v in mapping.items()) + "}'"
    return (f"Your column(s) {', '.join(repr(c) for c in theirs)} are not read by this workflow, and it reads "
            + "; ".join(f"'{name}' ({needed[name]})" for name in lacking)
            + f", which your table lacks. If one of your columns holds that, map it: {line}.")


def mapping_help(package: Package, table: pd.DataFrame, params: FolderParams, problem: str) -> tuple[str, str]:
    """A column-mapping problem as problem and fix: the workflow's columns, what each feeds, the user's columns."""
    needed = workflow_columns(package)
    mapped_back = {theirs: yours for theirs, yours in params.columns.items()}
    yours = [mapped_back.get(str(c), str(c)) for c in table.columns]
    named = re.search(r"column '([^']+)'", problem)
    missing = named.group(1) if named else next((name for name, why in needed.items()
                                                 if why.startswith("required") and name not in table.columns), None)
    if missing and missing not in needed:
        needed = {missing: "required: build_messages reads it", **needed}
    elif missing:
        needed = {missing: needed[missing], **needed}
    listing = "; ".join(f"'{name}' ({why})" for name, why in needed.items())
    mapping = {**params.columns, (missing or "column_it_needs"): "your_column"}
    line = "--param 'columns={" + ", ".join(f"{k}: {v}" for k, v in mapping.items()) + "}'"
    return (f"{problem} The workflow reads these columns: {listing}. Your table has: "
            f"{', '.join(repr(c) for c in yours)}.",
            f"Map one of your columns onto the workflow's name (the workflow's name first, then yours): {line} "
            "with your_column one of the columns above, or rename the column in your file.")


def run_package(package: Package, request: RunRequest, client: openai.OpenAI | None = None) -> RunResult:
    """Run a workflow folder on the input: output, outcome, evaluation, acceptance and report."""
    started = time.perf_counter()
    params = folder_params(request.params)
    output = outputs.check_output(request.output, (Path(request.input),))
    table = inputs.map_columns(inputs.read_table(request.input), params.columns)
    key = inputs.find_key(table, params.key)
    inputs.check_key(table, key)
    theirs = params.columns.get(key, key)  # the key column as the user's table names it
    products = table if params.products is None else inputs.read_table(params.products, "products")
    plan = _plan(package, params, key, request.batch is not None, request.echo, output)
    if client is None:
        client = llm.client()
    result = RunResult("folder", package.title, len(table), package.folder, output=output, key=theirs)
    note = unused_columns(package, table, params, key)
    if note:
        result.notes.append(note)
        if request.echo:
            print(f"Note: {note}", flush=True)
    if request.batch is not None:
        out, result.batch = run_through_batches(
            lambda replay: _call(package, table, replay, plan.kwargs, params), client,
            outputs.sidecar(output, "batch"), request.batch, BudgetGate(plan.settings, plan.model), request.echo)
    else:
        out = _call(package, table, client, plan.kwargs, params)
    out = _checked_output(out, table, key)
    if result.batch is not None and "workflow" in out.attrs:
        details = dict(out.attrs["workflow"])
        details["wall_s"] = round(time.perf_counter() - started, 3)
        details["notes"] = [*details.get("notes", []), *result.batch.notes,
                            f"Sent through the Batch API ({', '.join(result.batch.batch_ids) or 'no new batch'}); "
                            "costs are at the batch price."]
        out.attrs = {**out.attrs, "workflow": details}
    shown = out.rename(columns={key: theirs}) if theirs != key else out
    outputs.write_table(shown, output)
    result.outputs, result.rows_out = shown, len(out)
    result.outcome.count_table(shown)
    if len(out) < len(table):
        came = set(out[key].astype(str)) if key in out.columns else set()
        missing = [k for k in table[key].astype(str) if k not in came]
        result.outcome.left_out(len(table) - len(out), missing, None)
    if set(META_COLUMNS) <= set(out.columns):
        result.summary = summarize(out)
        if result.outcome.reused:
            result.outcome.reused_from = f"this output's earlier run ({plan.settings.storage.checkpoint})"
    _evaluate(package, out, products, result, key)
    result.report = write_report(result, outputs.sidecar(output, "report"), package.brief)
    return result


def _checked_output(out: Any, table: pd.DataFrame, key: str) -> pd.DataFrame:
    """The workflow's output as a table with the key column (lost rows are counted by the outcome)."""
    if not isinstance(out, pd.DataFrame):
        raise RunFailedError(f"The workflow's run() returned a {type(out).__name__}, not a table.",
                             "Return the table run_batch gives: one row per input row.")
    if key not in out.columns and len(out) == len(table):
        out = out.copy()
        out.insert(0, key, table[key].to_numpy())
    return out


def _sent_rows(out: pd.DataFrame) -> pd.Series:
    """True for the rows a model answered: rows never sent (budget, an expired batch) are not evaluated."""
    if "status" not in out.columns:
        return pd.Series(True, index=out.index)
    kind = out.get("error_kind", pd.Series("", index=out.index)).fillna("").astype(str)
    error = out.get("error", pd.Series("", index=out.index)).fillna("").astype(str).str.lower()
    failed = out["status"] == "failed"
    never = (out["status"] == "skipped_budget") | (failed & kind.isin(NOT_SENT_KINDS)) | (
        failed & (kind == "budget") & error.str.startswith("not sent"))
    return ~never & out["status"].notna()


def _evaluate(package: Package, out: pd.DataFrame, products: pd.DataFrame, result: RunResult, key: str) -> None:
    """Evaluate the rows that were sent (evaluate.py, else the workflow's own checks) and hold them to ACCEPTANCE."""
    sent = out[_sent_rows(out).to_numpy()].reset_index(drop=True)
    if not len(sent):
        return
    keys = sent[key].astype(str).tolist() if key in sent.columns else None
    try:
        if package.evaluator is not None:
            result.evaluation = from_evaluator(package.evaluator, sent, products, keys)
            result.acceptance = acceptance_of(getattr(package.evaluator, "ACCEPTANCE", None), result.evaluation)
        else:
            result.evaluation = from_run_checks(sent, key, keys)
    except RunFailedError as err:
        result.stop(f"{err.problem} {err.fix}".strip())


__all__ = ["BRIEF_FILE", "EVALUATE_FILE", "Package", "WORKFLOW_FILE", "load_package", "run_package"]
