"""What the take-home notebooks (labs/take-home/) share: read the learner's table, keep its key, log each run.

    table = takehome.load_input(input_path, key="sku", columns={"name": "title"}, needs=NEEDS, max_rows=3)
    results = run_batch(table.rows, ..., include=[table.key_column])
    takehome.save_output(table.restore(results), output_path)
    history = takehome.record_run(results, output_path)
    takehome.show_history(history)

Reading reuses marketlab.run.inputs (the same clear messages as `marketlab run`); what this module
adds is the notebook side: each message says which line of the parameters cell to change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from marketlab.brief import Brief
from marketlab.errors import MarketlabError
from marketlab.run import inputs
from marketlab.run.exitcodes import RunInputError

HISTORY_SUFFIX = "-history.csv"
MIN_RUNS_FOR_MONITOR = 6  # runs_settings compares at least 4 reference runs with the last 2
PARAMETERS_CELL = "the parameters cell at the top of the notebook"
HEADLESS_ENV = "MARKETLAB_RUN_HEADLESS"  # set by `marketlab run` (marketlab.run.notebook): where the verdict goes


def headless() -> bool:
    """True when the notebook runs under `marketlab run`: advice then names --param, not the parameters cell."""
    import os

    return bool(os.environ.get(HEADLESS_ENV))


def hold_to_acceptance(met: bool, verdict: str) -> bool:
    """The notebook's acceptance criteria against this run: printed, and handed to `marketlab run`'s outcome.

    Under `marketlab run` the verdict decides the exit status (4 when missed and every row was usable);
    in Jupyter it is printed. Returns `met`.
    """
    import json
    import os

    print(("✅ Acceptance met: " if met else "❌ Acceptance missed: ") + verdict)
    target = os.environ.get(HEADLESS_ENV)
    if target:
        Path(target).write_text(json.dumps({"met": bool(met), "verdict": verdict}), encoding="utf-8")
    return bool(met)


def _fix(jupyter: str, command: str) -> str:
    """The advice that fits where the notebook runs: Jupyter's parameters cell, or the command line."""
    return command if headless() else jupyter


class TakeHomeError(MarketlabError, ValueError):
    """A take-home notebook cannot run on the table or settings it was given."""

    headline = "❌ The workflow cannot start: change the parameters cell."


@dataclass(frozen=True)
class Input:
    """The learner's table, renamed to the workflow's columns and cut to max_rows, and how to give it back."""

    rows: pd.DataFrame       # the workflow's column names; the rows this run sends
    key: str                 # the learner's key column, as the input spells it
    key_column: str          # the same column's name inside `rows` (the workflow's name when it was mapped)
    rows_total: int          # rows in the input file, before max_rows
    keys: tuple[Any, ...] = ()  # every input row's key, in order, exact copies of a row included

    def restore(self, results: pd.DataFrame) -> pd.DataFrame:
        """Results with the learner's key column first, under their name, one row per input row: they join back.

        A row exported twice (an exact copy) runs once; its result is given to both copies.
        """
        ran = set(results[self.key_column])
        order = [k for k in self.keys if k in ran] or list(results[self.key_column])
        out = results.set_index(self.key_column, drop=False).loc[order].reset_index(drop=True)
        out = out.rename(columns={self.key_column: self.key}) if self.key_column != self.key else out
        return out[[self.key, *[c for c in out.columns if c != self.key]]]


def load_input(path: str | Path, *, key: str, columns: Mapping[str, str] | None, needs: Mapping[str, str],
               max_rows: int | None = None) -> Input:
    """The input table checked for this workflow: readable, the mapped and needed columns there, a unique key."""
    if columns is not None and not (isinstance(columns, Mapping) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in columns.items())):
        raise TakeHomeError(f"columns must map the workflow's column names to yours, not {columns!r}.",
                            _fix(f"In {PARAMETERS_CELL}, write it as columns = {{\"name\": \"your_column\"}} "
                                 "(the workflow's name first, then yours), or columns = {} if your names match.",
                                 "Write it as --param 'columns={name: your_column}' (the workflow's name first, "
                                 "then yours), or leave it out if your names match."))
    if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1):
        raise TakeHomeError(f"max_rows is {max_rows!r}; it must be a whole number of at least 1, or None.",
                            _fix(f"In {PARAMETERS_CELL}, write max_rows = 3 for a short trial, or max_rows = None "
                                 "for every row.", "Give --param max_rows=3 for a short trial, or --param "
                                 "max_rows=null for every row."))
    try:
        table = inputs.read_table(path)
        if key not in table.columns:
            inputs.find_key(table, key)  # says which columns there are
        mapped = inputs.map_columns(table, dict(columns or {}))
    except RunInputError as err:
        if headless():  # the same words as `marketlab run` uses for a folder
            raise TakeHomeError(err.problem, err.fix) from None
        problem = err.problem.replace("--param columns", "The column mapping (columns)").replace("--param key=",
                                                                                                 "key = ")
        fix = err.fix.replace("--param key=", "key = ").replace("--param 'columns=", "columns = '")
        raise TakeHomeError(problem,
                            f"{fix} In Jupyter: change input_path, key or columns in the parameters cell "
                            "and run the notebook again.") from None
    key_column = next((theirs for theirs, yours in (columns or {}).items() if yours == key), key)
    _check_needs(mapped, needs, dict(columns or {}))
    copies = mapped.astype(str).duplicated()
    if copies.any():
        print(f"{int(copies.sum())} row(s) are exact copies of an earlier row (the same record exported twice): "
              "each runs once, and its result is given to every copy.")
    keys = tuple(mapped[key_column])
    mapped = mapped[~copies.to_numpy()]
    try:
        inputs.check_key(mapped, key_column)
    except RunInputError as err:
        raise TakeHomeError(err.problem.replace(f"'{key_column}'", f"'{key}'"),
                            _fix(f"Make every value of {key} unique, or set key in {PARAMETERS_CELL} to a column "
                                 "that identifies each row.", f"Make every value of {key} unique, or give a column "
                                 "that identifies each row: --param key=<column>.")) from None
    rows = mapped if max_rows is None else mapped.head(max_rows)
    if len(rows) < len(mapped):
        print(f"Trial run: the first {len(rows)} of {len(mapped)} rows (max_rows = {max_rows}). "
              "Set max_rows = None to run them all.")
    return Input(rows.reset_index(drop=True), key, key_column, len(table), keys)


def _check_needs(table: pd.DataFrame, needs: Mapping[str, str], columns: Mapping[str, str]) -> None:
    """Every column the workflow reads is there (after the mapping), or the error says which line to add."""
    missing = [name for name in needs if name not in table.columns]
    if not missing:
        return
    name = missing[0]
    have = ", ".join(f"'{c}'" for c in table.columns if c not in columns)
    mapping = {**columns, name: "<your column>"}
    line = "{" + ", ".join(f"{k}: {v}" for k, v in mapping.items()) + "}"
    needed = "; ".join(f"'{n}' ({what})" for n, what in needs.items())
    raise TakeHomeError(f"This workflow needs a column '{name}' ({needs[name]}), and your table has none. "
                        f"The workflow reads: {needed}. Your unmapped columns are: {have}.",
                        _fix(f"In {PARAMETERS_CELL}, map one of your columns to it: columns = {mapping!r}.",
                             f"Map one of your columns to it: --param 'columns={line}'."))


def default_path(path: str | Path | None, default: Path) -> Path:
    """The path given in the parameters cell, or the default (the course file) when it is None."""
    return Path(default if path is None else path)


def load_brief(path: str | Path | None, default: Path) -> Brief:
    """The brief at `path`, or the course's brief for this workflow when path is None; lint issues printed."""
    chosen = default_path(path, default)
    if not chosen.is_file():
        raise TakeHomeError(f"The brief file {chosen} does not exist.",
                            _fix(f"Set brief_path in {PARAMETERS_CELL} to your brief.yaml, or to None for the "
                                 "course's brief.", "Give --param brief_path=your/brief.yaml, or leave it out for "
                                 "the course's brief."))
    brief = Brief.load(chosen)
    report = brief.lint()
    print(f"Brief: {brief.title or chosen.name} ({chosen.name}).")
    print(report)
    return brief


def policy_labels(policy: str | Path) -> dict[str, tuple[str, ...]]:
    """The labels of each `## ... labels` table of a labelling policy: {'sentiment': (...), 'topic': (...)}."""
    path = Path(policy)
    if not path.is_file():
        raise TakeHomeError(f"The labelling policy {path} does not exist.",
                            _fix(f"Set policy_path in {PARAMETERS_CELL} to your policy, or to None for the "
                                 "course's.", "Give --param policy_path=your/policy.md, or leave it out for the "
                                 "course's."))
    labels: dict[str, tuple[str, ...]] = {}
    for heading, body in re.findall(r"^## (\w+) labels\s*$(.*?)(?=^## |\Z)", path.read_text(encoding="utf-8"),
                                    re.M | re.S):
        found = re.findall(r"^\|\s*`([^`]+)`\s*\|", body, re.M)
        if found:
            labels[heading.lower()] = tuple(dict.fromkeys(found))
    for needed in ("sentiment", "topic"):
        if needed not in labels:
            raise TakeHomeError(f"The labelling policy {path.name} has no '## {needed.capitalize()} labels' table.",
                                "Give each set of labels its own section with a table whose first column holds "
                                "the labels in `backticks`, as datasets/labelling_policy.md does.")
    return labels


def named_fields(text: str) -> list[str]:
    """The field names in a reply's list of fields: comma, semicolon or line separated, blanks dropped."""
    return [name.strip().strip("'\"`") for name in re.split(r"[,;\n]", text) if name.strip().strip("'\"`")]


def fields_check(name: str = "fields_used") -> Any:
    """A check that passes when every field a reply names is a real column of its input row (and it names one)."""
    from marketlab.evaluate import make_check

    def real_fields(text: str, row: Mapping[str, Any] | None, channel: str) -> str | None:
        named = named_fields(text)
        if not named:
            return "names no field"
        unknown = [field for field in named if row is None or field not in row]
        return f"names field(s) the row does not have: {', '.join(unknown)}" if unknown else None

    return make_check(name, real_fields, describe="Every field the note says it used is a column of that row.")


def save_output(table: pd.DataFrame, path: str | Path) -> Path:
    """Write the results (CSV or Parquet, by the file's extension) and say where."""
    from marketlab.run.outputs import check_output, write_table

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        chosen = check_output(path)
    except RunInputError as err:
        raise TakeHomeError(err.problem, _fix(f"{err.fix} Or change output_path in {PARAMETERS_CELL}.",
                                              f"{err.fix} Give that name with --output.")) from None
    write_table(table, chosen)
    print(f"Saved {len(table)} rows to {chosen}.")
    return chosen


def checkpoint_path(output: str | Path, part: str = "") -> str:
    """Where a run keeps the rows it finished while rows are left (budget, errors): next to its output.

    Saved rows then belong to one output: a run with another output path starts afresh, and a run
    again on the same output (same rows, workflow and model) resumes without sending them again.
    """
    output = Path(output)
    return str(output.with_name(f"{output.stem}{'-' + part if part else ''}.checkpoint.jsonl").resolve())


def history_path(output: str | Path) -> Path:
    """The run history that goes next to the output: <output name>-history.csv."""
    output = Path(output)
    return output.with_name(output.stem + HISTORY_SUFFIX)


def record_run(results: pd.DataFrame, output: str | Path) -> pd.DataFrame:
    """Append this run's counts (rows, usable, checks passed, cost) to the run history; the whole history."""
    from marketlab.monitor import from_runs

    path = history_path(output)
    history = pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()
    number = int(history["run"].max()) + 1 if "run" in history.columns and len(history) else 1
    this_run = from_runs(results.assign(run=number), week="run")
    this_run.insert(1, "run_at", datetime.now(UTC).isoformat(timespec="seconds"))
    history = pd.concat([history, this_run], ignore_index=True)
    history.to_csv(path, index=False)
    print(f"Run {number} added to the run history {path.name} ({len(history)} runs so far).")
    return history


def rates_table(history: pd.DataFrame) -> pd.DataFrame:
    """One row per run: the usable rate, the pass rate of each check, and the cost."""
    table = pd.DataFrame({"run": history["run"], "run_at": history["run_at"], "rows": history["rows"],
                          "usable_rate": history["usable"] / history["rows"]})
    if "checked" in history.columns:
        table["pass_rate"] = history["passed"] / history["checked"].where(history["checked"] > 0)
    for column in history.columns:
        found = re.fullmatch(r"check_(\w+)_checked", str(column))
        if found:
            name = found.group(1)
            table[f"{name}_pass_rate"] = history[f"check_{name}_passed"] / history[column].where(history[column] > 0)
    table["cost_usd"] = history["cost_usd"]
    return table


def show_history(history: pd.DataFrame) -> Any:
    """The rates over runs: the monitor's report once there are enough runs, a plain table before that."""
    from marketlab.monitor import RUNS_RULES, MonitorError, run_monitor, runs_settings

    if len(history) < MIN_RUNS_FOR_MONITOR:
        print(f"{len(history)} run(s) so far: the monitor starts after {MIN_RUNS_FOR_MONITOR} runs. "
              "Rates per run:")
        return rates_table(history)
    counts = history.drop(columns=["run_at"]).fillna(0)
    try:
        monitoring = run_monitor(counts, RUNS_RULES, runs_settings(counts, week="run"))
    except MonitorError as err:  # e.g. the checks changed between runs: the plain table still says it
        print(f"The monitor could not read the history ({err.problem}). Rates per run:")
        return rates_table(history)
    print(monitoring.alerts_table() if monitoring.alerts else "No alert: the rates are within their limits.")
    report = monitoring.report
    rates = [c for c in report.columns if str(c).endswith("_rate")]
    return report[[c for c in ("run", "window", *rates, "cost_per_row", "firing") if c in report.columns]]


__all__ = ["Input", "TakeHomeError", "checkpoint_path", "default_path", "fields_check", "headless", "history_path",
           "hold_to_acceptance", "load_brief", "load_input",
           "named_fields", "policy_labels", "rates_table", "record_run", "save_output", "show_history"]
