"""A take-home notebook, run headless through papermill.

The notebook's parameters cell (the cell tagged `parameters`) sets at least `input_path` and
`output_path`; `marketlab run` gives those two from --input and --output, and every --param as a
parameter of the same name. papermill runs the notebook in its own folder on a fresh kernel and
saves the executed copy next to the output, with every cell's output, for the record. A cell that
raises stops the run (exit status 1); a notebook that raises marketlab.run.AcceptanceMissed
ends it with exit status 4. A TakeHomeError (the notebook's check of the table and the parameters,
before any model call) ends it with exit status 2 and a fix that names --param, not the notebook's cell.
"""

from __future__ import annotations

import ast
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import nbformat

from marketlab import environment
from marketlab.workflow import META_COLUMNS, summarize

from . import inputs, outputs
from .evaluation import AcceptanceResult, Criterion, from_run_checks
from .exitcodes import AcceptanceMissed, RunInputError
from .report import write_report
from .request import RunRequest, RunResult

INPUT_PARAMETER = "input_path"
OUTPUT_PARAMETER = "output_path"
PARAMETERS_TAG = "parameters"
DEFAULT_KERNEL = "python3"
KEY_PARAMETER = "key"
MAX_ROWS_PARAMETER = "max_rows"
HEADLESS_ENV = "MARKETLAB_RUN_HEADLESS"  # set while marketlab run executes a notebook
INPUT_ERRORS = ("TakeHomeError", "RunInputError")  # raised by a notebook's checks before any model call


def _read(path: Path) -> Any:
    if not path.is_file():
        raise RunInputError(f"The notebook {path} does not exist.", "Check the path of the .ipynb file.")
    try:
        return nbformat.read(path, as_version=4)
    except Exception as err:  # nbformat raises several kinds for a damaged file
        raise RunInputError(f"{path.name} cannot be read as a notebook ({type(err).__name__}).",
                            "Open it in Jupyter and save it again, or take a fresh copy of the take-home "
                            "notebook.") from None


def declared_parameters(path: Path) -> list[str]:
    """The names the notebook's parameters cell sets; an error when it has no such cell."""
    return list(parameter_defaults(path))


def parameter_defaults(path: Path) -> dict[str, Any]:
    """The parameters cell's names and default values (None where the default is not a plain value)."""
    from papermill.translators import papermill_translators

    notebook = _read(path)
    cell = next((c for c in notebook.cells if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        raise RunInputError(f"{path.name} has no cell tagged '{PARAMETERS_TAG}', so there is nowhere to put the "
                            "input and output paths.",
                            "In JupyterLab select the cell that sets input_path and output_path, open the "
                            "property inspector (the gear icon) and add the tag 'parameters'.")
    translator = papermill_translators.find_translator(*_kernel(notebook))
    found = {p.name: _literal(p.default) for p in translator.inspect(cell)}
    missing = [name for name in (INPUT_PARAMETER, OUTPUT_PARAMETER) if name not in found]
    if missing:
        raise RunInputError(f"The parameters cell of {path.name} does not set {' and '.join(missing)}.",
                            f"Add a line such as {missing[0]} = \"data.csv\" to that cell, and read the input "
                            "from input_path and write the results to output_path.")
    return found


def _literal(text: Any) -> Any:
    try:
        return ast.literal_eval(str(text))
    except (ValueError, SyntaxError):
        return None


def _kernel(notebook: Any) -> tuple[str, str]:
    """The notebook's kernel when it is installed here, else python3, and its language."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = notebook.metadata.get("kernelspec", {})
    wanted = spec.get("name")
    language = spec.get("language") or notebook.metadata.get("language_info", {}).get("name") or "python"
    return (wanted if wanted and wanted in KernelSpecManager().find_kernel_specs() else DEFAULT_KERNEL), language


def run_notebook(request: RunRequest) -> RunResult:
    """Run the notebook on the input; keep the executed copy; read the outcome from its output and report it."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = Path(request.source)
    defaults = parameter_defaults(source)
    names = list(defaults)
    output = outputs.check_output(request.output, (Path(request.input), source))
    table = inputs.read_table(request.input)  # a missing, empty or non-UTF-8 input stops here, not in a cell
    unknown = [name for name in request.params if name not in names]
    if unknown:
        raise RunInputError(f"--param {unknown[0]} is not set in the parameters cell of {source.name}.",
                            f"Use one of the notebook's parameters: {', '.join(names)}.")
    for name in (INPUT_PARAMETER, OUTPUT_PARAMETER):
        if name in request.params:
            raise RunInputError(f"--param {name} is given by --input and --output.", f"Leave --param {name} out.")
    chosen = {**defaults, **request.params}
    key = chosen.get(KEY_PARAMETER) if isinstance(chosen.get(KEY_PARAMETER), str) else None
    if key is not None and key not in table.columns:
        raise RunInputError(f"--param key={key} names a column your table does not have. Its columns are: "
                            f"{', '.join(repr(str(c)) for c in table.columns)}.",
                            "Give the column that identifies each row: --param key=<one of the columns above>.")
    max_rows = chosen.get(MAX_ROWS_PARAMETER)
    max_rows = max_rows if isinstance(max_rows, int) and not isinstance(max_rows, bool) else None
    executed = outputs.sidecar(output, "notebook")
    parameters = {**request.params, INPUT_PARAMETER: str(Path(request.input).resolve()),
                  OUTPUT_PARAMETER: str(output.resolve())}
    result = RunResult("notebook", source.stem, len(table), source, output=output, notebook=executed, key=key)
    kernel, language = _kernel(_read(source))
    verdict = Path(tempfile.mkdtemp(prefix="marketlab-run-")) / "acceptance.json"
    try:  # the folder goes whatever happens, a refused input and an interrupted run included
        # An output left by an earlier run is not this run's: only a file written from now on counts.
        before = output.stat().st_mtime_ns if output.exists() else None
        # The notebook's own messages then give --param fixes, not Jupyter ones, and its acceptance verdict
        # (marketlab.takehome.hold_to_acceptance) is written to this file for the outcome.
        with environment.changed({HEADLESS_ENV: str(verdict)}):
            try:
                papermill.execute_notebook(str(source), str(executed), parameters=parameters,
                                           cwd=str(source.parent), kernel_name=kernel, language=language,
                                           progress_bar=request.echo)
            except PapermillExecutionError as err:
                problem, _, fix = str(err.evalue).partition("\nHow to fix: ")
                if err.ename in INPUT_ERRORS:
                    executed.unlink(missing_ok=True)
                    raise RunInputError(" ".join(problem.split()), " ".join(fix.split())) from None
                message = " ".join(str(err.evalue).split())[:1000]
                if err.ename == AcceptanceMissed.__name__:
                    result.outcome.acceptance_missed_text = message
                else:
                    result.stop(f"the notebook stopped at cell {err.exec_count or err.cell_index + 1} with "
                                f"{err.ename}: {message}. The executed notebook {executed.name} shows the cell "
                                "and the whole error.")
        _read_verdict(result, verdict)
    finally:
        shutil.rmtree(verdict.parent, ignore_errors=True)
    written = output.exists() and (before is None or output.stat().st_mtime_ns != before)
    if written:
        _read_output(result, output, table, max_rows)
    elif result.outcome.stopped is None:
        stale = " (the file there is from an earlier run)" if output.exists() else ""
        result.stop(f"the notebook finished without writing {output.name}{stale}: its last cells must save the "
                    "results to output_path.")
    result.report = write_report(result, outputs.sidecar(output, "report"))
    return result


def _read_verdict(result: RunResult, path: Path) -> None:
    """The notebook's acceptance verdict, when it declared one (takehome.hold_to_acceptance)."""
    try:
        found = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        found = None
    if isinstance(found, dict) and "met" in found:
        met = bool(found["met"])
        result.acceptance = AcceptanceResult([Criterion("the notebook's acceptance criteria", 1.0,
                                                        1.0 if met else 0.0)], str(found.get("verdict") or ""))


def _read_output(result: RunResult, output: Path, table: Any, max_rows: int | None) -> None:
    """The notebook's output table, counted into the outcome: usable, failed, unsent, left out by a trial, lost."""
    try:
        out = inputs.read_table(output, "output")
    except RunInputError as err:  # an empty or unreadable output: nothing came back
        result.stop(f"the notebook's output cannot be used: {err.problem}")
        return
    result.outputs, result.rows_out = out, len(out)
    if result.key is None or result.key not in out.columns:
        try:
            result.key = result.outcome.key = inputs.find_key(out)
        except RunInputError:
            result.key = result.outcome.key = None
    result.outcome.count_table(out)
    if result.outcome.reused:  # the take-home notebooks keep them next to the output (takehome.checkpoint_path)
        result.outcome.reused_from = f"this output's earlier run ({output.stem}*.checkpoint.jsonl next to it)"
    if len(out) < result.rows_in:
        came = set(out[result.key].astype(str)) if result.key in out.columns else set()
        keys = table[result.key].astype(str).tolist() if result.key in table.columns else \
            [str(i + 1) for i in range(result.rows_in)]
        missing = [k for k in keys if k not in came] or keys[len(out):]
        result.outcome.left_out(result.rows_in - len(out), missing, max_rows)
    if set(META_COLUMNS) <= set(out.columns):
        result.summary = summarize(out)
    result.evaluation = from_run_checks(out, result.key)


__all__ = ["INPUT_PARAMETER", "OUTPUT_PARAMETER", "declared_parameters", "run_notebook"]
