"""The same monitor for LLM workflows: workflow results with a week column become a weekly table.

Per week: rows, usable replies, refusals, check verdicts (overall and per check), words per
reply and cost per row. `runs_settings` describes that table to the monitor.

A **refusal** is a row the runner marked ``error_kind == "refused"`` (the model service said it
would not answer: OpenAI's refusal field or a content filter), or a usable reply whose text opens
with a refusal phrase such as "I'm sorry" or "As an AI" (REFUSAL_OPENERS).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from .errors import MonitorError
from .settings import Measure, MonitorSettings, Rate, Windows

USABLE = ("ok", "repaired")
VERDICTS = ("passed", "failed", "unchecked", "not checked")
REFUSAL_OPENERS = ("i'm sorry", "i am sorry", "sorry, i", "i can't", "i cannot", "i can not", "i'm unable",
                   "i am unable", "i won't", "i will not", "as an ai")
RUNNER_COLUMNS = ("status", "error_kind", "cost_usd")
NOT_TEXT = {"status", "error", "error_kind", "source", "checks", "check_reason"}


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _bool_column(values: pd.Series) -> bool:
    kept = values.dropna()
    return not kept.empty and bool(kept.map(_is_bool).all())


def check_columns(results: pd.DataFrame) -> list[str]:
    """The names of the runner's per-check columns (`check_<name>`, True = passed)."""
    return [c[len("check_"):] for c in results.columns
            if str(c).startswith("check_") and c != "check_reason" and _bool_column(results[c])]


def _words(value: Any) -> int:
    return len(str(value).split()) if isinstance(value, str) else 0


def text_column(results: pd.DataFrame, week: str) -> str | None:
    """The reply's text field with the most words on average (the one the checks read), or None."""
    skip = NOT_TEXT | {week} | {c for c in results.columns if str(c).startswith("check_")}
    usable = results[results["status"].isin(USABLE)]
    words = {c: usable[c].map(_words).mean() for c in usable.columns
             if c not in skip and usable[c].map(lambda v: isinstance(v, str)).any()}
    return max(words, key=lambda c: words[c]) if words else None


def is_refusal(text: Any) -> bool:
    """True when a reply's text opens with a refusal phrase ("I'm sorry", "I cannot", "As an AI"...)."""
    if not isinstance(text, str):
        return False
    opening = re.sub(r"\s+", " ", text.replace("\u2019", "'")).strip().lower()
    return opening.startswith(REFUSAL_OPENERS)


def _weeks(results: pd.DataFrame, week: str) -> pd.Series:
    raw = results[week]
    if raw.isna().any():
        i = int(raw.isna().to_numpy().nonzero()[0][0])
        raise MonitorError(f"Column '{week}' is blank at index {results.index[i]!r}.",
                           "Give every row the week it was run (its Monday, or a week number).")
    if pd.api.types.is_integer_dtype(raw):
        return raw.astype("int64")
    dates = pd.to_datetime(raw, errors="coerce")
    if dates.isna().any():
        i = int(dates.isna().to_numpy().nonzero()[0][0])
        raise MonitorError(f"Column '{week}' should hold dates or week numbers, but index {results.index[i]!r} "
                           f"has {raw.iloc[i]!r}.", "Use the date the row was run, or a week number.")
    # Any day of a week counts for that week's Monday.
    return dates.dt.to_period("W-SUN").dt.start_time


def from_runs(results: pd.DataFrame, week: str = "week", text: str | None = None) -> pd.DataFrame:
    """Workflow results (run_batch's table with a week column) as one row per week of counts and measures."""
    if not isinstance(results, pd.DataFrame) or results.empty:
        raise MonitorError("from_runs needs the results table of a workflow run, with rows.",
                           "Pass the DataFrame run_batch returned, with a week column added.")
    missing = [c for c in (week, *RUNNER_COLUMNS) if c not in results.columns]
    if missing:
        fix = (f"Add the week each row was run: results['{week}'] = ... (a date or a week number)."
               if week in missing else "Pass the table that run_batch (or your workflow's run) returned.")
        raise MonitorError(f"The results have no column {missing[0]!r}.", fix)
    if "checks" in results.columns:
        odd = ~results["checks"].isin(VERDICTS)
        if odd.any():
            i = int(odd.to_numpy().nonzero()[0][0])
            raise MonitorError(f"Column 'checks' has {results['checks'].iloc[i]!r} at index {results.index[i]!r}.",
                               f"Each row's verdict is one of {list(VERDICTS)}.")
    text = text or text_column(results, week)
    if text is not None and text not in results.columns:
        raise MonitorError(f"The results have no column {text!r} to measure.",
                           f"Name the reply field to count words in, one of {list(results.columns)}.")
    rows = results.assign(**{week: _weeks(results, week)})
    usable = rows["status"].isin(USABLE)
    replies = rows[text].where(usable) if text else pd.Series(None, index=rows.index, dtype="object")
    per_row = pd.DataFrame({
        week: rows[week], "rows": 1, "usable": usable.astype(int),
        "refusals": ((rows["error_kind"] == "refused") | replies.map(is_refusal)).astype(int),
        "words": replies.map(_words).where(usable),
        "cost_usd": pd.to_numeric(rows["cost_usd"], errors="coerce"),
    })
    if "checks" in rows.columns:
        per_row["checked"] = rows["checks"].isin(["passed", "failed"]).astype(int)  # unchecked: neither way
        per_row["passed"] = (rows["checks"] == "passed").astype(int)
    for name in check_columns(rows):
        verdicts = rows[f"check_{name}"]
        per_row[f"check_{name}_checked"] = verdicts.notna().astype(int)
        per_row[f"check_{name}_passed"] = verdicts.map(lambda v: _is_bool(v) and bool(v)).astype(int)
    grouped = per_row.groupby(week, sort=True)
    weekly = grouped.sum(numeric_only=True).drop(columns=["words", "cost_usd"])
    weekly["output_words"] = grouped["words"].mean()
    # One unpriced row makes the week's cost unknown, not cheaper.
    unknown = per_row["cost_usd"].isna().groupby(per_row[week]).any()
    weekly["cost_usd"] = grouped["cost_usd"].sum().where(~unknown)
    weekly["cost_per_row"] = weekly["cost_usd"] / weekly["rows"]
    return weekly.reset_index()


def runs_settings(weekly_runs: pd.DataFrame, week: str = "week", windows: Windows | None = None) -> MonitorSettings:
    """Settings for a from_runs table: usable, refusal and check pass rates, words per reply, cost per row.

    Without ``windows`` the reference is the first half of the weeks (4 to 26 of them), the current
    window the last 2 weeks.
    """
    if windows is None:
        windows = Windows(max(4, min(26, len(weekly_runs) // 2)), 2)
    rates = [Rate("usable_rate", "usable", "rows"), Rate("refusal_rate", "refusals", "rows", worse_when="higher")]
    if "checked" in weekly_runs.columns:
        rates.append(Rate("pass_rate", "passed", "checked"))
    names = [c[len("check_"): -len("_checked")] for c in weekly_runs.columns
             if str(c).startswith("check_") and str(c).endswith("_checked")]
    rates += [Rate(f"{name}_pass_rate", f"check_{name}_passed", f"check_{name}_checked") for name in names]
    return MonitorSettings(week=week, rates=tuple(rates),
                           measures=(Measure("output_words", "output_words"), Measure("cost_per_row", "cost_per_row")),
                           totals=("rows",), windows=windows)
