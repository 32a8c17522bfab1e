"""Reading the table a run starts from (CSV or Parquet) and mapping its columns onto the workflow's.

Every problem is said in words a spreadsheet user can act on: which file, which line or column,
and what to do (save as CSV UTF-8, rename or map the column, ...).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from .exitcodes import RunInputError

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
KEY_CANDIDATES = ("sku", "id")
SAVE_AS_UTF8 = ("Save it again as UTF-8: in Excel, File > Save As > 'CSV UTF-8 (Comma delimited)'; in Google "
                "Sheets, File > Download > Comma-separated values.")


def read_table(path: str | Path, what: str = "input") -> pd.DataFrame:
    """The rows of a CSV (UTF-8) or Parquet file, with at least one row; errors say what to change."""
    path = Path(path)
    if not path.exists():
        raise RunInputError(f"The {what} file {path} does not exist.",
                            "Check the path (a path without a leading / starts from the folder you run the "
                            "command in).")
    if not path.is_file():
        raise RunInputError(f"The {what} {path} is a folder, not a file.", "Give the path of the CSV file itself.")
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        table = _read_parquet(path, what)
    elif suffix in CSV_SUFFIXES or not suffix:
        table = _read_csv(path, what)
    else:
        raise RunInputError(f"The {what} file {path.name} is neither CSV nor Parquet.",
                            "Export the table as .csv (UTF-8) or .parquet.")
    if table.empty:
        raise RunInputError(f"The {what} file {path.name} has column names but no rows.",
                            "Add at least one row below the header, or check that you exported the right sheet.")
    return table


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    raw = path.read_bytes()
    if not raw.strip():
        raise RunInputError(f"The {what} file {path.name} is empty.",
                            "Export the table again with a header row and at least one row of data.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise RunInputError(f"The {what} file {path.name} is not UTF-8 text: line {line} has the byte "
                            f"0x{raw[err.start]:02x}, which is how older spreadsheet programs save letters such as "
                            "é or ü.", SAVE_AS_UTF8) from None
    try:
        table = pd.read_csv(io.StringIO(text))
    except pd.errors.EmptyDataError:
        raise RunInputError(f"The {what} file {path.name} has no header row.",
                            "Export the table again with its column names in the first line.") from None
    except pd.errors.ParserError as err:
        detail = str(err).strip().splitlines()[-1] if str(err).strip() else "it is not a table"
        raise RunInputError(f"The {what} file {path.name} could not be read as CSV: {detail}.",
                            "Check that every line has as many commas as the header (text with commas needs "
                            "quotes); exporting from a spreadsheet program as CSV does this for you.") from None
    unnamed = [c for c in table.columns if str(c).startswith("Unnamed: ")]
    if unnamed:
        raise RunInputError(f"The {what} file {path.name} has {len(unnamed)} column(s) without a name in the header "
                            "row.", "Give every column a name in the first line, or delete the empty columns.")
    return table


def _read_parquet(path: Path, what: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except ImportError:
        raise RunInputError("Reading Parquet needs the pyarrow package, which is not installed.",
                            "Run `make setup` (or `.venv/bin/pip install -e .`), or give the input as CSV.") from None
    except Exception as err:  # pyarrow raises its own error kinds for damaged files
        raise RunInputError(f"The {what} file {path.name} could not be read as Parquet ({type(err).__name__}).",
                            "Check that the file is complete, or export the table as CSV.") from None


def map_columns(table: pd.DataFrame, columns: Mapping[str, str], source: str = "input") -> pd.DataFrame:
    """The table with your columns renamed to the workflow's (columns: the workflow's name -> your name)."""
    have = [str(c) for c in table.columns]
    missing = [(theirs, yours) for theirs, yours in columns.items() if yours not in have]
    if missing:
        theirs, yours = missing[0]
        raise RunInputError(f"--param columns maps '{theirs}' to your column '{yours}', but the {source} has no "
                            f"column '{yours}'. Its columns are: {_names(have)}.",
                            f"Write your column's name exactly as the header row spells it: --param "
                            f"'columns={{{theirs}: <one of the columns above>}}'.")
    doubled = [yours for yours in set(columns.values()) if list(columns.values()).count(yours) > 1]
    if doubled:
        raise RunInputError(f"--param columns maps more than one workflow column to your column '{doubled[0]}'.",
                            "Map each of your columns once; copy it in the spreadsheet if two columns need it.")
    renamed = table.rename(columns={yours: theirs for theirs, yours in columns.items()})
    clash = list(renamed.columns[renamed.columns.duplicated()])
    if clash:
        raise RunInputError(f"After --param columns, the {source} has two columns named '{clash[0]}'.",
                            f"Your table already has a column '{clash[0]}': map that one, or rename one of them.")
    return renamed


def find_key(table: pd.DataFrame, wanted: str | None = None) -> str:
    """The column that identifies a row: `wanted`, else the first unique one of sku, id and the columns ending
    in _id."""
    columns = [str(c) for c in table.columns]
    if wanted is not None:
        if wanted not in columns:
            raise RunInputError(f"--param key={wanted} names a column the input does not have. Its columns are: "
                                f"{_names(columns)}.", "Give the name of the column that identifies each row.")
        return wanted
    found = [name for name in dict.fromkeys([*KEY_CANDIDATES, *(c for c in columns if c.endswith("_id"))])
             if name in columns]
    for name in found:  # reviews.csv has sku and review_id: the key is the one that is unique
        values = table[name]
        if values.notna().all() and not values.astype(str).duplicated().any():
            return name
    if found:
        return found[0]  # check_key then says which value repeats
    raise RunInputError(f"marketlab run needs a column that identifies each row, so the results can be joined back "
                        f"to your table, and found none of sku, id or *_id among: {_names(columns)}.",
                        "Name it with --param key=your_id_column, or map it onto the workflow's key with "
                        "--param 'columns={sku: your_id_column}'.")


def check_key(table: pd.DataFrame, key: str) -> None:
    """Every row has a key, and no two rows share one (else results cannot be joined back)."""
    values = table[key]
    blank = values.isna() | (values.astype(str).str.strip() == "")
    if blank.any():
        row = int(blank.to_numpy().nonzero()[0][0])
        raise RunInputError(f"The key column '{key}' is empty in row {row + 2} of the input (counting the header as "
                            "row 1).", "Fill in the key of every row, or choose another key with --param key=...")
    repeated = values.astype(str).duplicated(keep=False)
    if repeated.any():
        first = values[repeated].astype(str).iloc[0]
        raise RunInputError(f"The key column '{key}' has the value '{first}' in more than one row, so results "
                            "could not be joined back to one row.", "Make every key unique, or choose another key with "
                            "--param key=...")


def _names(items: list[str]) -> str:
    shown = ", ".join(f"'{item}'" for item in items[:30])
    return shown + (f" and {len(items) - 30} more" if len(items) > 30 else "")


__all__ = ["check_key", "find_key", "map_columns", "read_table"]
