"""The instructor's cohort report: `reports/grades.csv` and a self-contained `reports/report.html`.

Scores come from the gradebook, reasons and problems from the grading records, model usage from
the learners' `submitted/<student>/<lab>/marketlab-usage.json` files. Plots are PNG images inlined
as base64, so the page can be mailed or archived as one file. Learner-controlled text is escaped.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from ..llm.ledger import read_usage
from .feedback import (PROBLEM_LABELS, LabResult, all_students, clip, esc, lab_result, open_gradebook, page,
                       student_labs)
from .layout import USAGE_FILE, Course

AT_RISK_PERCENT = 60.0
# Problem kinds that mean a submission tried to get around the grader, not just a bug.
HOSTILE_KINDS = {"edited_tests", "forbidden_read", "forbidden_process", "network", "write_outside"}
BASE_COLUMNS = ["student", "lab", "score", "max_score", "percent", "status", "reason"]
LABEL_CHARS = 40  # plot labels longer than this are cut, so 30-40 of them stay readable


# --- collecting -------------------------------------------------------------------------------

def collect_results(course: Course) -> list[LabResult]:
    """One LabResult per learner × lab, for every lab at least one learner has submitted."""
    students = all_students(course)
    labs = sorted({lab for student in students for lab in student_labs(course, student)})
    with open_gradebook(course) as gb:
        results = [lab_result(course, gb, student, lab) for student in students for lab in labs]
    active = {r.lab for r in results if r.status != "not submitted"}
    return [r for r in results if r.lab in active]


def _check_columns(results: list[LabResult]) -> list[str]:
    columns: dict[str, None] = {}
    for result in sorted(results, key=lambda r: r.lab):
        for check in result.checks:
            columns.setdefault(f"{result.lab}:{check.grade_id}", None)
    return list(columns)


def _spreadsheet_safe(text: str) -> str:
    # A cell starting with = + - @ is run as a formula by spreadsheet programs: keep it plain text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def grades_frame(results: list[LabResult]) -> pd.DataFrame:
    """The grades table: one row per learner × lab, one column per check ("lab:grade_id")."""
    checks = _check_columns(results)
    rows = []
    for r in results:
        row: dict[str, Any] = {"student": r.student, "lab": r.lab, "score": r.score, "max_score": r.max_score,
                               "percent": r.percent, "status": r.status, "reason": r.reason}
        row.update({f"{r.lab}:{c.grade_id}": c.score for c in r.checks})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=BASE_COLUMNS + checks)
    for column in ("student", "lab", "status", "reason"):
        frame[column] = frame[column].astype(str).map(_spreadsheet_safe)
    return frame


@dataclass
class Usage:
    """Model usage of one learner, summed over the usage files of their submissions."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cost_unknown: bool = False
    errors: int = 0
    files: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, models: list[dict[str, Any]]) -> None:
        """Add the per-model lines of one usage file."""
        self.files += 1
        for m in models:
            self.calls += m["calls"]
            self.prompt_tokens += m["prompt_tokens"]
            self.completion_tokens += m["completion_tokens"]
            self.errors += m["errors"]
            if m["cost_usd"] is None:
                self.cost_unknown = True
            else:
                self.cost_usd += m["cost_usd"]


def learner_usage(course: Course, student: str) -> Usage:
    """What one learner's usage files say, with a note for each unreadable file."""
    usage = Usage()
    folder = course.folder("submitted") / student
    for lab in sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        path = folder / lab / USAGE_FILE
        if not path.exists():
            continue
        try:
            usage.add(read_usage(path))
        except ValueError as exc:
            usage.notes.append(f"{lab}: usage file unreadable ({clip(exc, 300)})")
    if usage.files == 0 and not usage.notes:
        usage.notes.append("no usage recorded")
    return usage


# --- who needs attention ----------------------------------------------------------------------

def _average(results: list[LabResult]) -> float | None:
    values = [0.0 if r.status in ("not submitted", "failed") else r.percent
              for r in results if r.status != "not graded yet"]
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _risk_reasons(results: list[LabResult]) -> list[str]:
    reasons = []
    average = _average(results)
    low = average is not None and average < AT_RISK_PERCENT
    if low:
        reasons.append(f"average {average:.0f}% (below {AT_RISK_PERCENT:.0f}%)")
    for r in results:
        if r.status == "failed":
            reasons.append(f"{r.lab}: could not be marked" + (f" ({r.reason})" if r.reason else ""))
        for kind in sorted({p["kind"] for p in r.problems} & HOSTILE_KINDS):
            reasons.append(f"{r.lab}: {PROBLEM_LABELS[kind].lower()} ({kind})")
        if low and r.status == "not submitted":
            reasons.append(f"{r.lab}: not submitted")
    return reasons


def at_risk(results: list[LabResult]) -> list[tuple[str, float | None, list[str]]]:
    """(learner, average %, why) for learners below 60% on average or with a failed or hostile submission."""
    by_student: dict[str, list[LabResult]] = {}
    for r in results:
        by_student.setdefault(r.student, []).append(r)
    flagged = [(s, _average(rs), _risk_reasons(rs)) for s, rs in by_student.items()]
    flagged = [f for f in flagged if f[2]]
    return sorted(flagged, key=lambda f: (f[1] if f[1] is not None else -1.0, f[0]))


def check_failures(results: list[LabResult]) -> list[tuple[str, str, int, int]]:
    """(lab, grade_id, not passed, attempts) per automatic check, most often missed first."""
    counts: dict[tuple[str, str], list[int]] = {}
    for r in results:
        if r.status not in ("graded", "failed"):
            continue
        for c in r.checks:
            if c.autograded:
                tally = counts.setdefault((r.lab, c.grade_id), [0, 0])
                tally[0] += c.outcome != "passed"
                tally[1] += 1
    rows = [(lab, grade_id, bad, total) for (lab, grade_id), (bad, total) in counts.items()]
    return sorted(rows, key=lambda row: (-row[2] / row[3], row[0], row[1]))


# --- plots ------------------------------------------------------------------------------------

def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _label(text: str) -> str:
    # Plain text for matplotlib: a "$" would otherwise start a formula.
    return clip(text, LABEL_CHARS).replace("$", r"\$")


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{esc(alt)}">'


def score_plot(results: list[LabResult]) -> str | None:
    """Box plot with every learner as a dot, per lab; a data URI, None if nothing was marked."""
    import numpy as np

    by_lab: dict[str, list[float]] = {}
    for r in results:
        if r.status in ("graded", "failed") and r.percent is not None:
            by_lab.setdefault(r.lab, []).append(r.percent)
    if not by_lab:
        return None
    labs = sorted(by_lab)
    figure = _figure(max(5.0, 1.4 * len(labs) + 2), 4.0)
    ax = figure.add_subplot()
    ax.boxplot([by_lab[lab] for lab in labs], showfliers=False, widths=0.5)
    jitter = np.random.default_rng(0)
    for i, lab in enumerate(labs, start=1):
        ax.scatter(i + jitter.uniform(-0.15, 0.15, len(by_lab[lab])), by_lab[lab], s=18, alpha=0.6, color="#36c")
    ax.set_xticks(range(1, len(labs) + 1), [_label(lab) for lab in labs], rotation=20, ha="right")
    ax.axhline(AT_RISK_PERCENT, color="#b3261e", linestyle="--", linewidth=1)
    ax.set_ylim(-5, 105)
    ax.set_ylabel("score (%)")
    ax.set_title("Scores per lab (one dot per learner)")
    return _png(figure)


def failure_plot(failures: list[tuple[str, str, int, int]]) -> str | None:
    """Horizontal bars: share of learners who did not pass each check; None if there are no checks."""
    if not failures:
        return None
    rows = failures[::-1]  # barh draws bottom-up: most-missed on top
    figure = _figure(8.0, max(2.5, 0.32 * len(rows) + 1.2))
    ax = figure.add_subplot()
    rates = [100.0 * bad / total for _, _, bad, total in rows]
    ax.barh(range(len(rows)), rates, color="#b3261e")
    ax.set_yticks(range(len(rows)), [_label(f"{lab}: {grade_id}") for lab, grade_id, _, _ in rows], fontsize=8)
    for y, (rate, (_, _, bad, total)) in enumerate(zip(rates, rows)):
        ax.text(rate + 1, y, f"{bad}/{total}", va="center", fontsize=7)
    ax.set_xlim(0, 110)
    ax.set_xlabel("learners who did not pass (%)")
    ax.set_title("Which checks the cohort missed")
    return _png(figure)


def usage_plot(usage: dict[str, Usage]) -> str | None:
    """Tokens and cost per learner, side by side; None if nobody recorded any usage."""
    used = sorted((s for s, u in usage.items() if u.files),
                  key=lambda s: (usage[s].cost_usd, usage[s].prompt_tokens + usage[s].completion_tokens))
    if not used:
        return None
    figure = _figure(9.0, max(2.5, 0.28 * len(used) + 1.2))
    tokens_ax, cost_ax = figure.subplots(1, 2, sharey=True)
    positions = range(len(used))
    tokens_ax.barh(positions, [usage[s].prompt_tokens + usage[s].completion_tokens for s in used], color="#36c")
    cost_ax.barh(positions, [usage[s].cost_usd for s in used], color="#1b7a31")
    tokens_ax.set_yticks(positions, [_label(s) for s in used], fontsize=8)
    tokens_ax.set_xlabel("tokens (prompt + completion)")
    cost_ax.set_xlabel("cost (USD, known part)")
    figure.suptitle("Model usage per learner")
    return _png(figure)


# --- HTML -------------------------------------------------------------------------------------

def money(value: float) -> str:
    """US dollars with enough digits for the small sums of a course."""
    if value == 0:
        return "$0.00"
    return f"${value:,.4f}" if value >= 0.0001 else "< $0.0001"


def _percent(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.0f}%"


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    """An HTML table; cells are escaped here, so pass plain text."""
    numeric = numeric or set()
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{esc(cell)}</td>'
                                    for i, cell in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _lab_summary(results: list[LabResult]) -> str:
    rows = []
    for lab in sorted({r.lab for r in results}):
        rs = [r for r in results if r.lab == lab]
        marked = [r.percent for r in rs if r.status in ("graded", "failed") and r.percent is not None]
        series = pd.Series(marked, dtype=float)
        rows.append([lab, str(sum(r.status != "not submitted" for r in rs)),
                     str(sum(r.status == "graded" for r in rs)), str(sum(r.status == "failed" for r in rs)),
                     _percent(series.mean() if marked else None), _percent(series.median() if marked else None)])
    return _table(["Lab", "Submitted", "Marked", "Could not be marked", "Mean", "Median"], rows, {1, 2, 3, 4, 5})


def _usage_section(usage: dict[str, Usage]) -> str:
    rows = []
    for student, u in sorted(usage.items(), key=lambda item: (-item[1].cost_usd, item[0])):
        if u.files:
            cost = money(u.cost_usd) + (" + unknown" if u.cost_unknown else "")
            numbers = [str(u.calls), f"{u.prompt_tokens:,}", f"{u.completion_tokens:,}", cost, str(u.errors)]
        else:
            numbers = ["–"] * 5
        rows.append([student, *numbers, "; ".join(u.notes)])
    known = sum(u.cost_usd for u in usage.values())
    table = _table(["Learner", "Calls", "Prompt tokens", "Completion tokens", "Cost (USD)", "Failed calls",
                    "Notes"], rows, {1, 2, 3, 4, 5})
    plot = usage_plot(usage)
    return (f"<p>Total known cost for the cohort: <b>{esc(money(known))}</b>. “+ unknown” means a model "
            f"without a price in the price table was used.</p>{table}"
            + (_img(plot, "Tokens and cost per learner") if plot else "<p class=muted>No usage recorded.</p>"))


def _problems_section(results: list[LabResult]) -> str:
    rows = [[r.student, r.lab, f'{PROBLEM_LABELS.get(p["kind"], "Problem")} ({p["kind"] or "?"})', p["cell"],
             p["detail"]]
            for r in results for p in r.problems]
    if not rows:
        return "<p class=muted>No problems were recorded while grading.</p>"
    return _table(["Learner", "Lab", "Problem", "Cell", "Details"], rows)


def _risk_section(results: list[LabResult]) -> str:
    flagged = at_risk(results)
    if not flagged:
        return "<p class=muted>Nobody is below 60% on average or has a failed or suspicious submission.</p>"
    return _table(["Learner", "Average", "Why"], [[s, _percent(avg), "; ".join(why)] for s, avg, why in flagged],
                  {1})


def report_html(results: list[LabResult], usage: dict[str, Usage]) -> str:
    """The whole cohort report as one HTML page."""
    learners = sorted({r.student for r in results} | set(usage))
    scores, failures = score_plot(results), check_failures(results)
    failure_img = failure_plot(failures)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = [f"<h1>Cohort report</h1><p class=muted>{len(learners)} learners · "
            f"{len({r.lab for r in results})} labs · made {esc(stamp)}</p>",
            "<h2>Labs</h2>", _lab_summary(results),
            "<h2>Score distribution</h2>",
            _img(scores, "Scores per lab") if scores else "<p class=muted>Nothing has been marked yet.</p>",
            "<h2>Which checks were missed</h2><p>Share of learners who did not get full points on each "
            "automatic check: the top bars are the concepts the cohort struggled with.</p>",
            _img(failure_img, "Failure rate per check") if failure_img else "<p class=muted>No checks yet.</p>",
            _table(["Lab", "Check", "Did not pass", "Attempts"],
                   [[lab, grade_id, str(bad), str(total)] for lab, grade_id, bad, total in failures], {2, 3}),
            "<h2>Learners at risk</h2>", _risk_section(results),
            "<h2>Model usage and cost</h2>", _usage_section(usage),
            "<h2>Problems while grading</h2>", _problems_section(results)]
    return page("Cohort report", "\n".join(body))


def write_report(course: Course) -> tuple[Path, Path]:
    """Write reports/grades.csv and reports/report.html for the whole cohort; return both paths."""
    results = collect_results(course)
    students = sorted({r.student for r in results} | set(all_students(course)))
    usage = {student: learner_usage(course, student) for student in students}
    folder = course.folder("reports")
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, html_path = folder / "grades.csv", folder / "report.html"
    grades_frame(results).to_csv(csv_path, index=False)
    html_path.write_text(report_html(results, usage), encoding="utf-8")
    return csv_path, html_path

