"""A take-home notebook, run headless through papermill.

The notebook's parameters cell (the cell tagged `parameters`) sets at least `input_path` and
`output_path`; `marketlab run` gives those two from --input and --output, and every --param as a
parameter of the same name. papermill runs the notebook in its own folder on a fresh kernel and
saves the executed copy next to the output, with every cell's output, for the record. A cell that
raises stops the run (exit status 1); a notebook that raises marketlab.run.AcceptanceMissed
ends it with exit status 4.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat

from marketlab.workflow import META_COLUMNS, summarize

from . import inputs, outputs
from .evaluation import from_run_checks
from .exitcodes import AcceptanceMissed, ExitCode, RunInputError
from .job import RunRequest, RunResult
from .report import write_report

INPUT_PARAMETER = "input_path"
OUTPUT_PARAMETER = "output_path"
PARAMETERS_TAG = "parameters"
DEFAULT_KERNEL = "python3"
USABLE = ("ok", "repaired")


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
    from papermill.translators import papermill_translators

    notebook = _read(path)
    cell = next((c for c in notebook.cells if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        raise RunInputError(f"{path.name} has no cell tagged '{PARAMETERS_TAG}', so there is nowhere to put the "
                            "input and output paths.",
                            "In JupyterLab select the cell that sets input_path and output_path, open the "
                            "property inspector (the gear icon) and add the tag 'parameters'.")
    names = [p.name for p in papermill_translators.find_translator(*_kernel(notebook)).inspect(cell)]
    missing = [name for name in (INPUT_PARAMETER, OUTPUT_PARAMETER) if name not in names]
    if missing:
        raise RunInputError(f"The parameters cell of {path.name} does not set {' and '.join(missing)}.",
                            f"Add a line such as {missing[0]} = \"data.csv\" to that cell, and read the input "
                            "from input_path and write the results to output_path.")
    return names


def _kernel(notebook: Any) -> tuple[str, str]:
    """The notebook's kernel when it is installed here, else python3, and its language."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = notebook.metadata.get("kernelspec", {})
    wanted = spec.get("name")
    language = spec.get("language") or notebook.metadata.get("language_info", {}).get("name") or "python"
    return (wanted if wanted and wanted in KernelSpecManager().find_kernel_specs() else DEFAULT_KERNEL), language


def run_notebook(request: RunRequest) -> RunResult:
    """Run the notebook on the input; keep the executed copy; check, summarise and report the output."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = Path(request.source)
    names = declared_parameters(source)
    output = outputs.check_output(request.output, (Path(request.input), source))
    rows_in = len(inputs.read_table(request.input))  # a missing, empty or non-UTF-8 input stops here, not in a cell
    unknown = [name for name in request.params if name not in names]
    if unknown:
        raise RunInputError(f"--param {unknown[0]} is not set in the parameters cell of {source.name}.",
                            f"Use one of the notebook's parameters: {', '.join(names)}.")
    for name in (INPUT_PARAMETER, OUTPUT_PARAMETER):
        if name in request.params:
            raise RunInputError(f"--param {name} is given by --input and --output.", f"Leave --param {name} out.")
    executed = outputs.sidecar(output, "notebook")
    parameters = {**request.params, INPUT_PARAMETER: str(Path(request.input).resolve()),
                  OUTPUT_PARAMETER: str(output.resolve())}
    title = source.stem
    result = RunResult("notebook", title, rows_in, source, output=output, notebook=executed)
    kernel, language = _kernel(_read(source))
    try:
        papermill.execute_notebook(str(source), str(executed), parameters=parameters, cwd=str(source.parent),
                                   kernel_name=kernel, language=language, progress_bar=request.echo)
    except PapermillExecutionError as err:
        code = ExitCode.ACCEPTANCE_MISSED if err.ename == AcceptanceMissed.__name__ else ExitCode.FAILED
        message = " ".join(str(err.evalue).split())[:1000]
        result.fail(code, f"The notebook stopped at cell {err.exec_count or err.cell_index + 1} with {err.ename}: "
                          f"{message}. The executed notebook {executed.name} shows the cell and the whole error.")
    if output.exists():
        _read_output(result, output)
    elif result.exit_code is ExitCode.OK:
        result.fail(ExitCode.FAILED, f"The notebook finished without writing {output.name}: its last cells must "
                                     "save the results to output_path.")
    result.report = write_report(result, outputs.sidecar(output, "report"))
    return result


def _read_output(result: RunResult, output: Path) -> None:
    """The notebook's output table: lost rows, the run summary and its check columns."""
    try:
        out = inputs.read_table(output, "output")
    except RunInputError as err:  # an empty or unreadable output: nothing came back
        result.fail(ExitCode.ROWS_LOST if "no rows" in err.problem else ExitCode.FAILED,
                    f"The notebook's output cannot be used: {err.problem}")
        return
    result.outputs, result.rows_out = out, len(out)
    if len(out) < result.rows_in:
        result.fail(ExitCode.ROWS_LOST, f"The output has {len(out)} rows; the input has {result.rows_in}: "
                                        f"{result.rows_in - len(out)} row(s) lost.")
    try:
        result.key = inputs.find_key(out)
    except RunInputError:
        result.key = None
    if set(META_COLUMNS) <= set(out.columns):
        result.summary = summarize(out)
        if not out["status"].isin(USABLE).any():
            result.fail(ExitCode.FAILED, f"Not one of the {len(out)} rows came back usable.")
    result.evaluation = from_run_checks(out, result.key)


__all__ = ["INPUT_PARAMETER", "OUTPUT_PARAMETER", "declared_parameters", "run_notebook"]
