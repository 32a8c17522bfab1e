"""Where a run writes: the output table (CSV or Parquet, by its extension) and the files beside it.

    out.csv               the results, one row per input row
    out.report.html       the evaluation report
    out.executed.ipynb    the executed notebook (notebook runs), kept for the record
    out.batch.json        the Batch API state while a batch runs (deleted when the run finishes)
    out.checkpoint.jsonl  the rows a folder run finished, while it has rows left (budget, errors), so the
                          next run of the same input, workflow, model and output resumes from it
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .exitcodes import RunFailedError, RunInputError

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
SIDECARS = {"report": ".report.html", "notebook": ".executed.ipynb", "batch": ".batch.json",
            "checkpoint": ".checkpoint.jsonl"}


def check_output(output: str | Path, sources: tuple[Path, ...] = ()) -> Path:
    """The output path, checked before anything runs: a known format, a folder that exists, not an input."""
    path = Path(output)
    if path.suffix.lower() not in FORMATS:
        raise RunInputError(f"The output {path.name} has no known format: it must end in .csv or .parquet.",
                            "Name the output e.g. results.csv, or results.parquet for large tables.")
    if path.is_dir():
        raise RunInputError(f"The output {path} is a folder.", "Give a file name, e.g. results/run.csv.")
    if not path.parent.is_dir():
        raise RunInputError(f"The folder {path.parent} of the output does not exist.",
                            f"Create it first (mkdir -p {path.parent}) or write the output elsewhere.")
    for source in sources:
        if source.exists() and path.exists() and path.resolve() == source.resolve():
            raise RunInputError(f"The output {path.name} is also the input: the run would overwrite its own data.",
                                "Write the results to a new file, e.g. results.csv.")
    return path


def sidecar(output: Path, kind: str) -> Path:
    """The file of kind report, notebook or batch that goes next to `output`."""
    return output.with_name(output.stem + SIDECARS[kind])


def write_table(table: pd.DataFrame, path: Path) -> None:
    """Write the table in the format of its extension; the file appears whole or not at all."""
    partial = path.with_name(path.name + ".partial")
    try:
        if FORMATS[path.suffix.lower()] == "csv":
            table.to_csv(partial, index=False)
        else:
            _to_parquet(table, partial)
        partial.replace(path)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise RunFailedError(f"The output {path} could not be written ({err.strerror or err}).",
                             "Check that the folder is writable and the disk is not full.") from None


def _to_parquet(table: pd.DataFrame, path: Path) -> None:
    try:
        table.to_parquet(path, index=False)
    except ImportError:
        raise RunInputError(
            "Writing Parquet needs the pyarrow package, which is not installed.",
            "Run `make setup` (or `.venv/bin/pip install -e .`), or write the output as .csv.") from None
    except (TypeError, ValueError, NotImplementedError):  # pyarrow's errors for columns of mixed kinds
        # Cells mixing text, numbers and lists cannot be one Parquet column: store such columns as text.
        mixed = table.copy()
        for name in mixed.columns[mixed.dtypes == object]:  # noqa: E721  # pandas compares each column's dtype
            mixed[name] = mixed[name].map(_cell_text)
        mixed.to_parquet(path, index=False)


def _cell_text(value: object) -> object:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


__all__ = ["FORMATS", "SIDECARS", "check_output", "sidecar", "write_table"]
