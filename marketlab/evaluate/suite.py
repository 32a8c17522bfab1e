"""run_checks: every check on every text of a table, one tidy row per text.

    from marketlab import data
    from marketlab.evaluate.suite import run_checks
    results = run_checks(data.load("rated_outputs"), data.load("products"))
    results[["output_id", "faithfulness", "passed", "reason"]]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from marketlab.tables import is_missing

from .checks import Check, Finding, banned_words, check_list, disclaimers, hype, length, repetition, required_facts
from .errors import EvaluateInputError
from .facts import faithfulness
from .voice import BrandVoice, as_voice

DEFAULT_CHANNEL = "web"
ID_COLUMNS = ("output_id", "sku", "channel", "prompt_version")
NO_TEXT = Finding(False, "no text")


def default_checks(voice: BrandVoice | Mapping[str, Any] | None = None) -> list[Check]:
    """The seven text checks, built from a brand voice (default: the course's)."""
    chosen = as_voice(voice)
    return [length(chosen), banned_words(chosen), required_facts(chosen), faithfulness(chosen), repetition(),
            hype(chosen), disclaimers(chosen)]


DEFAULT_CHECKS: tuple[Check, ...] = tuple(default_checks())
# The defect kind each default check is meant to catch (the columns of rated_outputs.csv).
DEFECT_CHECKS: dict[str, str] = {c.defect: c.name for c in DEFAULT_CHECKS if c.defect}


def product_lookup(products: pd.DataFrame | None, skus: pd.Series | None = None) -> dict[str, dict[str, Any]]:
    """{sku: product row} for the skus that are used, with a clear error for a missing column or sku."""
    if products is None:
        return {}
    if not isinstance(products, pd.DataFrame):
        raise EvaluateInputError(f"products is a {type(products).__name__}, not a table.",
                                 "Pass the products table, e.g. data.load('products').")
    if "sku" not in products.columns:
        raise EvaluateInputError("The products table has no 'sku' column.",
                                 f"Its columns are {list(products.columns)}; rename the product id column to 'sku'.")
    table = products.drop_duplicates("sku", keep="first").set_index(products["sku"].drop_duplicates().astype(str))
    rows = {str(sku): row for sku, row in zip(table.index, table.to_dict("records"))}
    if skus is not None:
        unknown = [s for s in dict.fromkeys(skus.astype(str)) if s not in rows]
        if unknown:
            first = skus.astype(str).tolist().index(unknown[0])
            raise EvaluateInputError(
                f"{len(unknown)} sku(s) of the texts are not in the products table, e.g. '{unknown[0]}' "
                f"(row {first + 1}).", "Pass the products table the texts were written from, or drop those rows.")
    return rows


def _check_outputs(outputs: Any, text: str, channel: str | None, need_sku: bool) -> None:
    if not isinstance(outputs, pd.DataFrame):
        raise EvaluateInputError(f"outputs is a {type(outputs).__name__}, not a table.",
                                 "Pass a DataFrame with a 'text' column, e.g. data.load('rated_outputs').")
    if text not in outputs.columns:
        raise EvaluateInputError(f"The outputs table has no '{text}' column.",
                                 f"Its columns are {list(outputs.columns)}; pass text='your column' "
                                 "or rename the column with the copy.")
    if need_sku and "sku" not in outputs.columns:
        raise EvaluateInputError("The outputs table has no 'sku' column, so its texts cannot be matched to products.",
                                 "Add the product's sku to every row (run_batch(..., include=['sku'])), or pass "
                                 "products=None to run only the checks that need no facts.")
    if channel is not None and channel in outputs.columns:
        cells = outputs[channel]
        bad = cells[~cells.map(lambda c: is_missing(c) or isinstance(c, str))]
        if len(bad):
            raise EvaluateInputError(f"The '{channel}' column has a {type(bad.iloc[0]).__name__} in row "
                                     f"{outputs.index.get_loc(bad.index[0]) + 1}.",
                                     "Write a channel name such as 'web' or 'email' in every row.")


def run_checks(outputs: pd.DataFrame, products: pd.DataFrame | None, checks: Sequence[Check] = DEFAULT_CHECKS, *,
               text: str = "text", channel: str | None = "channel",
               voice: BrandVoice | Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Run every check on every text: id columns, one True/False column per check (True = passed), passed,
    outcome ("passed", "failed" or "unchecked"), unchecked (the checks that recognised nothing to check) and reason.

    A check that recognised nothing to check (faithfulness on a text with no claim) is False in its
    column, so it never counts as passed, and is named in `unchecked`; `outcome` is "unchecked" when
    no check failed and at least one could not check.

    voice= rebuilds the default checks from another brand voice (e.g. a holdout's); it cannot be
    combined with your own list of checks.
    """
    if voice is not None:
        if checks is not DEFAULT_CHECKS:
            raise EvaluateInputError("run_checks got both checks= and voice=.",
                                     "Build your checks from the voice yourself (length(voice), ...), or pass only "
                                     "voice= to use the default checks with that brand voice.")
        checks = default_checks(voice)
    chosen = check_list(checks)
    _check_outputs(outputs, text, channel, products is not None)
    lookup = product_lookup(products, outputs["sku"] if products is not None else None)
    skus = outputs["sku"].astype(str).tolist() if "sku" in outputs.columns else [None] * len(outputs)
    channels = [DEFAULT_CHANNEL] * len(outputs)
    if channel is not None and channel in outputs.columns:
        channels = [DEFAULT_CHANNEL if is_missing(c) else str(c).strip() for c in outputs[channel]]
    products_per_row = [lookup.get(sku) if sku is not None else None for sku in skus]
    verdicts = check_texts(outputs[text].tolist(), products_per_row, channels, chosen)
    columns, reasons = verdicts.passed, verdicts.reasons
    ids = [c for c in outputs.columns if c in ID_COLUMNS or (c.endswith("_id") and c != text)]
    out = outputs[ids].copy()
    for name, values in columns.items():
        out[name] = pd.Series(values, index=outputs.index, dtype=bool)
    out["passed"] = out[list(columns)].all(axis=1) if columns else True
    out["outcome"] = pd.Series(verdicts.outcomes, index=outputs.index, dtype=object)
    out["unchecked"] = pd.Series([", ".join(names) for names in verdicts.unchecked], index=outputs.index,
                                 dtype=object)
    out["reason"] = pd.Series(reasons, index=outputs.index, dtype=object)
    return out


@dataclass(frozen=True)
class Verdicts:
    """The checks' results on a list of texts: pass/fail per check (in text order), and a reason per text."""

    passed: dict[str, list[bool]]
    reasons: list[str]
    outcomes: list[str] = field(default_factory=list)  # "passed", "failed" or "unchecked", per text
    unchecked: list[list[str]] = field(default_factory=list)  # the checks that recognised nothing, per text


def check_texts(texts: Sequence[Any], products: Sequence[Mapping[str, Any] | None], channels: Sequence[str],
                checks: Sequence[Check]) -> Verdicts:
    """Every check on every text (with its product and channel): the loop run_checks and run_batch share."""
    passed: dict[str, list[bool]] = {c.name: [] for c in checks}
    reasons: list[str] = []
    outcomes: list[str] = []
    unchecked: list[list[str]] = []
    for cell, product, where in zip(texts, products, channels):
        problems, failed, could_not = [], False, []
        for check in checks:
            finding = _run_one(check, cell, product, where)
            passed[check.name].append(finding.passed)
            if getattr(finding, "unchecked", False):
                could_not.append(check.name)
                problems.append(f"{check.name}: {finding.evidence}")
            elif not finding.passed:
                failed = True
                problems.append(f"{check.name}: {finding.evidence}")
        reasons.append("; ".join(problems))
        outcomes.append("failed" if failed else "unchecked" if could_not else "passed")
        unchecked.append(could_not)
    return Verdicts(passed, reasons, outcomes, unchecked)


def _run_one(check: Check, cell: Any, product: Mapping[str, Any] | None, channel: str) -> Finding:
    """One check on one cell: a missing text fails, a check that breaks says so instead of stopping the run."""
    if is_missing(cell):
        return NO_TEXT
    if not isinstance(cell, str):
        return Finding(False, f"not text (a {type(cell).__name__})")
    try:
        finding = check(cell, product, channel)
    except Exception as err:  # a learner's check may fail in any way: that row fails, the run goes on
        return Finding(False, f"the check stopped with {type(err).__name__}: {str(err)[:120]}")
    if not isinstance(finding, Finding):
        return Finding(False, f"the check returned {type(finding).__name__}, not a Finding")
    return finding
