"""The evaluation report next to the output: one self-contained HTML page.

Rendered by jinja2 with autoescape on, in the house style of the course reports (it extends
marketlab/course/templates/base.html.j2); the pass-rate plot is a PNG inlined as base64, so the
page can be mailed or archived as one file. Every text on it passes through the redactor first,
and the model's and the learner's words are shown escaped and cut to length.
"""

from __future__ import annotations

import base64
import io
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from marketlab.workflow.errors import ERROR_KINDS
from marketlab.workflow.redact import Redactor

from .job import RunResult

TEMPLATE = "run_report.html.j2"
MAX_ROWS = 25
MAX_TEXT = 300
TEXT_COLUMNS = ("text", "description")


@cache
def templates() -> jinja2.Environment:
    """This package's report template, with the course templates it extends; autoescape is always on."""
    loader = jinja2.ChoiceLoader([jinja2.PackageLoader("marketlab.run", "templates"),
                                  jinja2.PackageLoader("marketlab.course", "templates")])
    return jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True)


class _Text:
    """Redacted, length-limited text for the page."""

    def __init__(self) -> None:
        self.redact = Redactor()

    def __call__(self, value: Any, limit: int = MAX_TEXT) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return ""
        text = self.redact(str(value))
        return text if len(text) <= limit else text[: limit - 1] + "…"


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _plot(table: pd.DataFrame) -> str:
    from marketlab.evaluate.plots import plot

    try:
        return _png(plot(table))
    except Exception:  # a check name matplotlib cannot draw must not cost the report
        return ""


def _evaluation(result: RunResult, text: _Text) -> tuple[dict[str, Any] | None, list[dict[str, str]]]:
    evaluation = result.evaluation
    if evaluation is None:
        return None, []
    table = evaluation.table
    passed = table["passed"].fillna(False).astype(bool).to_numpy()
    context = {"source": evaluation.source, "rows": len(table), "pass_rate": f"{evaluation.pass_rate:.0%}",
               "failed": int((~passed).sum()), "plot": _plot(table),
               "checks": [[text(name), f"{rate:.0%}"] for name, rate in evaluation.rates.items()]}
    outputs = result.outputs
    keys = outputs[result.key].tolist() if outputs is not None and result.key in outputs.columns else \
        list(range(1, len(table) + 1))
    column = next((c for c in TEXT_COLUMNS if outputs is not None and c in outputs.columns), None)
    texts = outputs[column].tolist() if column else [""] * len(table)
    reasons = table["reason"].tolist() if "reason" in table.columns else [""] * len(table)
    failing = [{"key": text(keys[i], 80), "reason": text(reasons[i]), "text": text(texts[i], 200)}
               for i in range(len(table)) if not passed[i]][:MAX_ROWS]
    return context, failing


def _acceptance(result: RunResult) -> dict[str, Any] | None:
    if result.acceptance is None:
        return None
    rows = [[c.name, f"{c.target:.0%}", f"{c.reached:.0%}", "yes" if c.met else "no"]
            for c in result.acceptance.criteria]
    return {"met": result.acceptance.met, "verdict": result.acceptance.describe(), "rows": rows}


def _unusable(result: RunResult, text: _Text) -> tuple[list[list[str]], int]:
    out = result.outputs
    if out is None or "status" not in out.columns:
        return [], 0
    bad = out[~out["status"].isin(["ok", "repaired"])]
    keys = bad[result.key].tolist() if result.key in bad.columns else [i + 1 for i in range(len(bad))]
    rows = [[text(k, 80), text(status), text(f"{ERROR_KINDS.get(kind, kind or '')}: {error}")]
            for k, status, kind, error in zip(keys, bad["status"], bad.get("error_kind", [""] * len(bad)),
                                              bad.get("error", [""] * len(bad)))]
    return rows[:MAX_ROWS], len(bad)


def _batch(result: RunResult, text: _Text) -> list[list[str]]:
    batch = result.batch
    if batch is None:
        return []
    rows = [["Batches sent by this run", text(", ".join(batch.sent) or "none")],
            ["Batches picked up from an earlier run", text(", ".join(batch.resumed) or "none")],
            ["Requests sent", f"{batch.requests:,} in {batch.rounds} round(s)"],
            ["Tokens", f"{batch.usage.tokens:,}"], ["Estimated cost (batch price)", f"${batch.usage.cost_usd:,.4f}"]]
    return rows + [["Note", text(note)] for note in batch.notes]


def report_context(result: RunResult, brief: Any = None) -> dict[str, Any]:
    """Everything the report shows, as plain text (redacted and cut) and numbers."""
    text = _Text()
    evaluation, failing = _evaluation(result, text)
    unusable, unusable_total = _unusable(result, text)
    facts = [["Rows in the input", f"{result.rows_in:,}"], ["Rows in the output", f"{result.rows_out:,}"],
             ["Output", text(result.output)], ["Key column", text(result.key or "none")]]
    if result.notebook is not None:
        facts.append(["Executed notebook", text(result.notebook)])
    objective = getattr(getattr(brief, "objective", None), "statement", "") if brief is not None else ""
    return {
        "title": text(result.title, 120), "kind": "Workflow folder" if result.kind == "folder" else "Notebook",
        "source": text(result.source), "stamp": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "exit_code": int(result.exit_code), "verdict": result.exit_code.meaning(),
        "problems": [text(p, 1000) for p in result.problems], "facts": facts, "objective": text(objective),
        "brief_acceptance": [text(line) for line in (getattr(brief, "acceptance", None) or [])],
        "evaluation": evaluation, "failing": failing, "acceptance": _acceptance(result), "key": text(result.key or ""),
        "no_evaluation": "No evaluation: the folder has no evaluate.py and the workflow wrote no check columns. "
                         "Add the evaluate.py that Lab 3 saved to report pass rates and hold the run to its "
                         "acceptance criteria.",
        "summary": text(result.summary, 5000) if result.summary is not None else "",
        "unusable": unusable, "unusable_total": unusable_total, "batch": _batch(result, text),
    }


def write_report(result: RunResult, path: Path, brief: Any = None) -> Path:
    """Render the report for this run to `path` (written whole, or not at all)."""
    html = templates().get_template(TEMPLATE).render(**report_context(result, brief))
    partial = path.with_name(path.name + ".partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(path)
    return path


__all__ = ["report_context", "templates", "write_report"]
