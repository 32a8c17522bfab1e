"""Check a weekly table before anything is measured: the columns exist, counts make sense, weeks are in order."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .errors import MonitorError
from .settings import MonitorSettings


def week_label(week: Any) -> str:
    """A week as a person reads it: 'the week of 2024-01-29', or 'week 5' for week numbers."""
    if isinstance(week, pd.Timestamp):
        return f"the week of {week:%Y-%m-%d}"
    return f"week {week}"


def _where(table: pd.DataFrame, week: str, i: int) -> str:
    return f"{week_label(table[week].iloc[i])} (index {table.index[i]!r})"


def _needed(settings: MonitorSettings) -> list[str]:
    cols = [settings.week]
    for rate in settings.rates:
        cols += [rate.successes, rate.trials]
    cols += [m.column for m in settings.measures]
    for mix in settings.mixes:
        cols += [*mix.columns, *([mix.weight] if mix.weight else [])]
    cols += [*settings.numeric, *settings.totals]
    return list(dict.fromkeys(cols))


def _counts(settings: MonitorSettings) -> list[str]:
    cols = [c for rate in settings.rates for c in (rate.successes, rate.trials)]
    cols += [mix.weight for mix in settings.mixes if mix.weight]
    cols += [c for mix in settings.mixes if not mix.weight for c in mix.columns]
    return list(dict.fromkeys(cols))


def _weeks(table: pd.DataFrame, week: str) -> pd.Series:
    raw = table[week]
    if pd.api.types.is_integer_dtype(raw):
        return raw.astype("int64")
    parsed = pd.to_datetime(raw, errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(bad.nonzero()[0][0])
        raise MonitorError(f"Column '{week}' should hold dates like 2024-01-29, but index {table.index[i]!r} has "
                           f"{raw.iloc[i]!r}.", f"Put the Monday of each week in '{week}' (or a week number), "
                           "with no blanks.")
    return parsed.astype("datetime64[ns]")


def _check_order(table: pd.DataFrame, week: str) -> None:
    weeks = table[week]
    repeated = weeks.duplicated(keep=False).to_numpy()
    if repeated.any():
        rows = repeated.nonzero()[0]
        first = weeks.iloc[rows[0]]
        same = [table.index[i] for i in rows if weeks.iloc[i] == first]
        raise MonitorError(f"{week_label(first).capitalize()} appears {len(same)} times (index {same}).",
                           f"Keep one row per week: add them up with "
                           f"df.groupby('{week}', as_index=False).sum(), or drop the repeated rows.")
    steps = weeks.diff().iloc[1:]
    back = (steps < pd.Timedelta(0)).to_numpy() if isinstance(weeks.iloc[0], pd.Timestamp) else \
        (steps < 0).to_numpy()
    if back.any():
        i = int(back.nonzero()[0][0]) + 1
        raise MonitorError(f"The weeks are not in order: {_where(table, week, i)} comes after "
                           f"{week_label(weeks.iloc[i - 1])}.",
                           f"Sort the table first: df.sort_values('{week}').")


def _numbers(table: pd.DataFrame, column: str, week: str, blanks_ok: bool) -> pd.Series:
    values = pd.to_numeric(table[column], errors="coerce")
    bad = (values.isna() & (table[column].notna() | (not blanks_ok))).to_numpy()
    if bad.any():
        i = int(bad.nonzero()[0][0])
        raise MonitorError(f"Column '{column}' should hold numbers, but {_where(table, week, i)} has "
                           f"{table[column].iloc[i]!r}.", "Fill in a number for every week (0 if nothing happened).")
    return values.astype("float64")


def _check_counts(table: pd.DataFrame, settings: MonitorSettings) -> None:
    week = settings.week
    for column in _counts(settings):
        values = table[column].to_numpy()
        for bad, what in ((values < 0, "a negative count"), (values % 1 != 0, "a count that is not a whole number")):
            if bad.any():
                i = int(bad.nonzero()[0][0])
                raise MonitorError(f"Column '{column}' has {what} ({values[i]:g}) in {_where(table, week, i)}.",
                                   "Counts are whole numbers of 0 or more: correct that week's row at the source.")
    for rate in settings.rates:
        over = (table[rate.successes] > table[rate.trials]).to_numpy()
        if over.any():
            i = int(over.nonzero()[0][0])
            raise MonitorError(f"In {_where(table, week, i)}, '{rate.successes}' "
                               f"({table[rate.successes].iloc[i]:g}) is more than '{rate.trials}' "
                               f"({table[rate.trials].iloc[i]:g}): {rate.name} would be above 100%.",
                               f"Check that '{rate.successes}' counts the successes and '{rate.trials}' the "
                               "attempts they come from; swap them if they are the wrong way round.")
    for mix in settings.mixes:
        if mix.weight:
            shares = table[list(mix.columns)].to_numpy()
            outside = ((shares < 0) | (shares > 1)).any(axis=1)
            if outside.any():
                i = int(outside.nonzero()[0][0])
                raise MonitorError(f"The {mix.name} columns {list(mix.columns)} should be shares between 0 and 1, "
                                   f"but {_where(table, week, i)} has {shares[i].tolist()}.",
                                   "Give each part's share of the week (0.3 for 30%).")


def check_weekly(weekly: Any, settings: MonitorSettings, *, reference: bool = True) -> pd.DataFrame:
    """A checked copy of a weekly table: named columns present, counts sensible, one row per week, in order.

    With ``reference=True`` the table must also be longer than the reference window.
    """
    if not isinstance(weekly, pd.DataFrame):
        raise MonitorError(f"The monitor needs a table (a pandas DataFrame), not {type(weekly).__name__}.",
                           "Load the weekly data first, e.g. marketlab.data.load('campaign_weekly').")
    if weekly.empty:
        raise MonitorError("The weekly table is empty.", "Pass a table with one row per week.")
    missing = [c for c in _needed(settings) if c not in weekly.columns]
    if missing:
        raise MonitorError(f"The weekly table has no column {missing[0]!r}"
                           + (f" (also missing: {missing[1:]})" if missing[1:] else "")
                           + f". Its columns are {list(weekly.columns)}.",
                           "Rename your columns to these names, or describe yours in the settings, e.g. "
                           "MonitorSettings(week='week', rates=(Rate('open_rate', successes='opens', "
                           "trials='sent'),)).")
    table = weekly.copy()
    table[settings.week] = _weeks(table, settings.week)
    _check_order(table, settings.week)
    blanks_ok = {m.column for m in settings.measures} | set(settings.numeric)
    for column in _needed(settings)[1:]:
        table[column] = _numbers(table, column, settings.week, column in blanks_ok)
    _check_counts(table, settings)
    weeks = settings.windows.reference_weeks
    if reference and len(table) <= weeks:
        raise MonitorError(f"The table has {len(table)} weeks, but the reference window alone takes {weeks}.",
                           f"Monitor more weeks, or use a shorter reference: "
                           f"settings.with_windows(reference_weeks={max(4, len(table) // 2)}).")
    return table
