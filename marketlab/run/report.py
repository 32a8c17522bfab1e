"""The evaluation report next to the output: one self-contained HTML page.

Rendered by jinja2 with autoescape on, in the house style of the course reports (it extends
marketlab/course/templates/base.html.j2); the pass-rate plot is a PNG inlined as base64, so the
page can be mailed or archived as one file. Every text on it passes through the redactor first,
and the model's and the learner's words are shown escaped and cut to length.
"""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from marketlab.workflow.redact import Redactor

from .request import RunResult

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
    from marketlab.evaluate.plots import plot  # late: matplotlib loads only for a report with a chart

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
    keys = evaluation.keys if evaluation.keys is not None else [str(i + 1) for i in range(len(table))]
    outputs = result.outputs
    texts: dict[str, Any] = {}
    column = next((c for c in TEXT_COLUMNS if outputs is not None and c in outputs.columns), None)
    if column and outputs is not None and result.key and result.key in outputs.columns:
        texts = dict(zip(outputs[result.key].astype(str), outputs[column]))
    reasons = table["reason"].tolist() if "reason" in table.columns else [""] * len(table)
    failing = [{"key": text(keys[i], 80), "reason": text(reasons[i]), "text": text(texts.get(str(keys[i]), ""), 200)}
               for i in range(len(table)) if not passed[i]][:MAX_ROWS]
    return context, failing


def _acceptance(result: RunResult) -> dict[str, Any] | None:
    if result.acceptance is None:
        return None
    rows = [[c.name, f"{c.target:.0%}", f"{c.reached:.0%}", "yes" if c.met else "no"]
            for c in result.acceptance.criteria]
    return {"met": result.acceptance.met, "verdict": result.acceptance.describe(), "rows": rows}


LABELS = {"failed": "sent, no usable reply", "skipped_budget": "not sent: budget",
          "not_sent": "not sent", "lost": "lost"}


def _rows(result: RunResult, text: _Text, statuses: tuple[str, ...]) -> tuple[list[list[str]], int]:
    found = [p for p in result.outcome.problem_rows if p.status in statuses]
    return [[text(p.key, 80), LABELS.get(p.status, p.status), text(p.reason)] for p in found[:MAX_ROWS]], len(found)


def _outcome(result: RunResult) -> list[list[str]]:
    o = result.outcome
    accepted = {None: "none declared", True: "met", False: "missed"}[o.acceptance_met]
    rows = [["Rows in the input", f"{o.rows_in:,}"], ["Usable: ok", f"{o.ok:,}"],
            ["Usable: repaired", f"{o.repaired:,}"], ["Sent, no usable reply (failed)", f"{o.failed:,}"],
            ["Not sent: the budget ran out", f"{o.skipped_budget:,}"],
            ["Not sent or never answered (trial, expired batch)", f"{o.not_sent:,}"]]
    if o.lost:
        rows.append(["Lost (missing from the output)", f"{o.lost:,}"])
    rows.append(["Acceptance criteria", accepted])
    if o.reused:
        rows.append(["Reused, not sent again", f"{o.reused:,} row(s), from {o.reused_from or 'an earlier run'}"])
    if o.from_cache:
        rows.append(["Answered from the response cache", f"{o.from_cache:,} row(s)"])
    return rows


def _batch(result: RunResult, text: _Text) -> list[list[str]]:
    batch = result.batch
    if batch is None:
        return []
    rows = [["Batches sent by this run", text(", ".join(batch.sent) or "none")],
            ["Batches picked up from an earlier run", text(", ".join(batch.resumed) or "none")],
            ["Requests sent", f"{batch.requests:,} in {batch.rounds} round(s)"],
            ["Tokens", f"{batch.usage.tokens:,}"], ["Estimated cost (batch price)", f"${batch.usage.cost_usd:,.4f}"]]
    return rows + [["Note", text(note)] for note in batch.notes]


NO_EVALUATION = {
    "folder": "No evaluation: the folder has no evaluate.py and the workflow wrote no check columns. Add the "
              "evaluate.py that Lab 3 saved to report pass rates and hold the run to its acceptance criteria.",
    "notebook": "No evaluation table in the output: this notebook shows its checks in the executed notebook "
                "(open it to read them), or no row was checked because none came back usable.",
}


def report_context(result: RunResult, brief: Any = None) -> dict[str, Any]:
    """Everything the report shows, as plain text (redacted and cut) and numbers, all from the outcome record."""
    text = _Text()
    evaluation, failing = _evaluation(result, text)
    unusable, unusable_total = _rows(result, text, ("failed", "lost"))
    unsent, unsent_total = _rows(result, text, ("skipped_budget", "not_sent"))
    facts = [["Output", text(result.output)], ["Key column (as your table names it)", text(result.key or "none found")]]
    if result.notebook is not None:
        facts.append(["Executed notebook", text(result.notebook)])
    facts += [["Note", text(note, 1000)] for note in result.notes]
    objective = getattr(getattr(brief, "objective", None), "statement", "") if brief is not None else ""
    return {
        "title": text(result.title, 120), "kind": "Workflow folder" if result.kind == "folder" else "Notebook",
        "source": text(result.source), "stamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "exit_code": int(result.exit_code), "verdict": result.exit_code.meaning(),
        "headline": text(result.outcome.headline(), 1000), "outcome": _outcome(result),
        "problems": [text(p, 1000) for p in result.problems], "facts": facts, "objective": text(objective),
        "brief_acceptance": [text(line) for line in (getattr(brief, "acceptance", None) or [])],
        "evaluation": evaluation, "failing": failing, "acceptance": _acceptance(result),
        "key": text(result.key or ""), "no_evaluation": NO_EVALUATION[result.kind],
        "summary": text(result.summary, 5000) if result.summary is not None else "",
        "unusable": unusable, "unusable_total": unusable_total, "unsent": unsent, "unsent_total": unsent_total,
        "batch": _batch(result, text),
    }


def write_report(result: RunResult, path: Path, brief: Any = None) -> Path:
    """Render the report for this run to `path` (written whole, or not at all)."""
    html = templates().get_template(TEMPLATE).render(**report_context(result, brief))
    partial = path.with_name(path.name + ".partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(path)
    return path


__all__ = ["report_context", "templates", "write_report"]
