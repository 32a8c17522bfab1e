"""The instructor's cohort report: `reports/grades.csv` and a self-contained `reports/report.html`.

Scores and reasons come from the typed grading records (`marketlab.grading.records.GradingRecord`),
hand marks given since autograde from the gradebook, model usage from the learners'
`submitted/<student>/<lab>/marketlab-usage.json` files. The page is rendered by jinja2 with
autoescape on; plots are PNG images inlined as base64, so it can be mailed or archived as one file.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from ..grading.records import CATALOGUE, INSTRUCTOR_KINDS, NOT_COUNTED, label
from ..llm.ledger import read_usage
from .feedback import LabResult, all_students, check_name, clip, collect, outcome, render, student_labs
from .hub_figures import HubFigures, fetch_hub_figures
from .layout import USAGE_FILE, Course

AT_RISK_PERCENT = 60.0
# Problem kinds that may mean a learner worked around the grader rather than made a mistake.
SUSPECT_KINDS = {"edited_tests", "refused_file"}
BASE_COLUMNS = ["student", "lab", "score", "max_score", "percent", "status", "reason", "auto_score", "auto_max",
                "awaiting_hand_marking"]
LABEL_CHARS = 40  # plot labels longer than this are cut, so 30-40 of them stay readable
DETAIL_CHARS = 300  # longest instructor detail shown per flagged submission


# --- collecting -------------------------------------------------------------------------------

def collect_results(course: Course) -> list[LabResult]:
    """One LabResult per learner × lab, for every lab at least one learner has handed in."""
    students = all_students(course)
    labs = sorted({lab for student in students for lab in student_labs(course, student)})
    results = collect(course, [(student, lab) for student in students for lab in labs])
    active = {r.lab for r in results if r.state != "not submitted"}
    return [r for r in results if r.lab in active]


def _spreadsheet_safe(text: str) -> str:
    # A cell starting with = + - @ is run as a formula by spreadsheet programs: keep it plain text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _cells(result: LabResult) -> dict[str, float | None]:
    """lab:grade_id -> points, of every check and hand-marked cell (None: awaiting hand marking)."""
    if not result.graded or result.record is None:
        return {}
    cells: dict[str, float | None] = {f"{result.lab}:{c.grade_id}": c.score for c in result.record.checks}
    cells.update({f"{result.lab}:{m.grade_id}": m.score for m in result.record.manual})
    return cells


def grades_frame(results: list[LabResult]) -> pd.DataFrame:
    """The grades table: one row per learner × lab, one column per cell ("lab:grade_id").

    `percent` is of the points decided so far: cells awaiting hand marking count neither way.
    """
    rows, columns = [], {}
    for r in sorted(results, key=lambda r: (r.lab, r.student)):
        columns.update(dict.fromkeys(_cells(r)))
    for r in results:
        record = r.record if r.graded else None
        row: dict[str, Any] = {"student": r.student, "lab": r.lab, "score": r.score,
                               "max_score": record.max_score if record else None, "percent": r.percent,
                               "status": r.state, "reason": record.reason if record else "",
                               "auto_score": record.auto_score if record else None,
                               "auto_max": record.auto_max if record else None,
                               "awaiting_hand_marking": record.manual_pending if record else None}
        rows.append({**row, **_cells(r)})
    frame = pd.DataFrame(rows, columns=BASE_COLUMNS + list(columns))
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
        if path.is_symlink():  # a submission is data: never follow a link out of it
            usage.notes.append(f"{lab}: usage file is a link, ignored")
        elif path.exists():
            try:
                usage.add(read_usage(path))
            except ValueError as exc:
                usage.notes.append(f"{lab}: usage file unreadable ({clip(exc, 300)})")
    if usage.files == 0 and not usage.notes:
        usage.notes.append("no usage recorded")
    return usage


# --- who and what needs attention -------------------------------------------------------------

def _average(results: list[LabResult]) -> float | None:
    found = [0.0 if r.state in ("not submitted", "failed") else r.percent
             for r in results if r.state in ("not submitted", "failed", "graded")]
    values = [v for v in found if v is not None]
    return sum(values) / len(values) if values else None


def _risk_reasons(results: list[LabResult]) -> list[str]:
    reasons = []
    average = _average(results)
    low = average is not None and average < AT_RISK_PERCENT
    if low:
        reasons.append(f"average {average:.0f}% (below {AT_RISK_PERCENT:.0f}%)")
    for r in results:
        if r.state == "failed":
            why = (r.record.learner_problems or r.record.problems)[:1] if r.record is not None else []
            reasons.append(f"{r.lab}: could not be marked" + (f" ({why[0].label.lower()})" if why else ""))
        for kind in sorted({p.kind for p in r.record.problems} & SUSPECT_KINDS if r.record else set()):
            reasons.append(f"{r.lab}: {label(kind).lower()} ({kind})")
        if low and r.state == "not submitted":
            reasons.append(f"{r.lab}: not submitted")
    return reasons


def at_risk(results: list[LabResult]) -> list[tuple[str, float | None, list[str]]]:
    """(learner, average %, why) for learners below 60% on average or with a failed or suspect submission."""
    by_student: dict[str, list[LabResult]] = {}
    for r in results:
        by_student.setdefault(r.student, []).append(r)
    flagged = [(s, _average(rs), _risk_reasons(rs)) for s, rs in by_student.items()]
    flagged = [f for f in flagged if f[2]]
    return sorted(flagged, key=lambda f: (f[1] if f[1] is not None else -1.0, f[0]))


@dataclass(frozen=True)
class CheckFailures:
    """How often one automatic check was not passed."""

    lab: str
    grade_id: str
    name: str
    missed: int
    attempts: int


def check_failures(results: list[LabResult]) -> list[CheckFailures]:
    """Per automatic check, how many did not pass it, most often missed first.

    A check that could not run because of the course's own set-up does not count against anyone.
    """
    counts: dict[tuple[str, str], list[Any]] = {}
    for r in results:
        for c in r.record.checks if r.graded and r.record else []:
            if c.reason in INSTRUCTOR_KINDS:
                continue
            tally = counts.setdefault((r.lab, c.grade_id), [check_name(c), 0, 0])
            tally[1] += outcome(c) != "passed"
            tally[2] += 1
    rows = [CheckFailures(lab, grade_id, name, missed, total)
            for (lab, grade_id), (name, missed, total) in counts.items()]
    return sorted(rows, key=lambda row: (-row.missed / row.attempts, row.lab, row.grade_id))


class Flag(NamedTuple):
    """One kind of problem in one submission (a table row)."""

    student: str
    lab: str
    cells: str
    score: str
    detail: str  # the instructor detail of the record, on set-up problems only


@dataclass(frozen=True)
class FlagGroup:
    """Every submission flagged with one kind of problem."""

    kind: str
    label: str
    text: str
    audience: str  # who has to act: "instructor" (set-up problem), "note" or "learner"
    flags: list[Flag]

    @property
    def headers(self) -> list[str]:
        """Column names of this group's table."""
        return ["Learner", "Lab", "Cells", "Automatic score"] + (["Detail"] if self.audience == "instructor" else [])

    @property
    def rows(self) -> list[list[str]]:
        """This group's table."""
        return [list(flag)[:len(self.headers)] for flag in self.flags]


def flagged(results: list[LabResult]) -> list[FlagGroup]:
    """Every submission with problems (its own, or a check that could not run), grouped by kind."""
    groups: dict[str, list[Flag]] = {}
    for r in results:
        record = r.record
        if record is None:
            continue
        cells: dict[str, list[str]] = {}
        for p in record.problems:
            cells.setdefault(p.kind, []).extend([p.cell] if p.cell else [])
        for c in record.checks:
            if c.reason:
                cells.setdefault(c.reason, []).append(c.grade_id)
        score = f"{record.auto_score:g} / {record.auto_max:g}" if r.graded else r.state
        for kind, names in cells.items():
            detail = clip(record.instructor_detail, DETAIL_CHARS) if kind in INSTRUCTOR_KINDS else ""
            groups.setdefault(kind, []).append(Flag(r.student, r.lab, clip(", ".join(dict.fromkeys(names)), 200),
                                                    score, detail))
    order = list(CATALOGUE)
    return [FlagGroup(kind, label(kind), CATALOGUE[kind][1] if kind in CATALOGUE else f"Unknown kind “{kind}”.",
                      "instructor" if kind in INSTRUCTOR_KINDS else "note" if kind in NOT_COUNTED else "learner",
                      sorted(flags, key=lambda f: (f.student, f.lab)))
            for kind, flags in sorted(groups.items(),
                                      key=lambda item: (order.index(item[0]) if item[0] in order else len(order),
                                                        item[0]))]


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


def score_plot(results: list[LabResult]) -> str | None:
    """Box plot with every learner as a dot, per lab; a data URI, None if nothing was marked."""
    import numpy as np

    by_lab: dict[str, list[float]] = {}
    for r in results:
        if r.graded and r.percent is not None:
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
    ax.set_ylabel("score (% of points marked so far)")
    ax.set_title("Scores per lab (one dot per learner)")
    return _png(figure)


def failure_plot(failures: list[CheckFailures]) -> str | None:
    """Horizontal bars: share of learners who did not pass each check; None if there are no checks."""
    if not failures:
        return None
    rows = failures[::-1]  # barh draws bottom-up: most-missed on top
    figure = _figure(8.0, max(2.5, 0.32 * len(rows) + 1.2))
    ax = figure.add_subplot()
    rates = [100.0 * row.missed / row.attempts for row in rows]
    ax.barh(range(len(rows)), rates, color="#b3261e")
    ax.set_yticks(range(len(rows)), [_label(f"{row.lab}: {row.name}") for row in rows], fontsize=8)
    for y, (rate, row) in enumerate(zip(rates, rows)):
        ax.text(rate + 1, y, f"{row.missed}/{row.attempts}", va="center", fontsize=7)
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


# --- tables of plain text, rendered by templates/report.html.j2 --------------------------------

def money(value: float) -> str:
    """US dollars with enough digits for the small sums of a course."""
    if value == 0:
        return "$0.00"
    return f"${value:,.4f}" if value >= 0.0001 else "< $0.0001"


def _percent(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.0f}%"


def _lab_rows(results: list[LabResult]) -> list[list[str]]:
    rows = []
    for lab in sorted({r.lab for r in results}):
        rs = [r for r in results if r.lab == lab]
        marked = pd.Series([r.percent for r in rs if r.graded and r.percent is not None], dtype=float)
        rows.append([lab, *(str(n) for n in (sum(r.state != "not submitted" for r in rs),
                                             sum(r.state == "graded" for r in rs),
                                             sum(r.state == "failed" for r in rs),
                                             sum(r.state == "not submitted" for r in rs),
                                             sum(bool(r.pending) for r in rs if r.graded))),
                     _percent(marked.mean() if len(marked) else None),
                     _percent(marked.median() if len(marked) else None)])
    return rows


def _pending_rows(results: list[LabResult]) -> list[list[str]]:
    return [[r.student, r.lab, ", ".join(check_name(m) for m in r.pending), f"{r.record.manual_pending:g}"]
            for r in results if r.graded and r.pending and r.record]


def _usage_rows(usage: dict[str, Usage]) -> list[list[str]]:
    rows = []
    for student, u in sorted(usage.items(), key=lambda item: (-item[1].cost_usd, item[0])):
        if u.files:
            cost = money(u.cost_usd) + (" + unknown" if u.cost_unknown else "")
            numbers = [str(u.calls), f"{u.prompt_tokens:,}", f"{u.completion_tokens:,}", cost, str(u.errors)]
        else:
            numbers = ["–"] * 5
        rows.append([student, *numbers, "; ".join(u.notes)])
    return rows


def report_html(results: list[LabResult], usage: dict[str, Usage], hub: HubFigures | None = None) -> str:
    """The whole cohort report as one HTML page (with the hub's practice and gateway figures when given)."""
    failures = check_failures(results)
    return render(
        "report.html.j2",
        learners=len({r.student for r in results} | set(usage)), labs=len({r.lab for r in results}),
        stamp=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), at_risk_percent=AT_RISK_PERCENT,
        lab_rows=_lab_rows(results), score_plot=score_plot(results),
        failure_plot=failure_plot(failures),
        failure_rows=[[f.lab, f.name, f.grade_id, str(f.missed), str(f.attempts)] for f in failures],
        pending_rows=_pending_rows(results),
        risk_rows=[[s, _percent(avg), "; ".join(why)] for s, avg, why in at_risk(results)],
        usage_rows=_usage_rows(usage), usage_plot=usage_plot(usage),
        total_cost=money(sum(u.cost_usd for u in usage.values())), groups=flagged(results), hub=hub,
        practice_rows=[[e.lab, e.exercise, str(e.attempts), str(e.failed), str(e.tried), str(e.passed)]
                       for e in (hub.exercises if hub else [])],
        gateway_rows=[[u.learner, str(u.answered), f"{u.prompt_tokens:,}", f"{u.completion_tokens:,}",
                       str(u.over_budget), str(u.rate_limited)] for u in (hub.usage if hub else [])])


def write_report(course: Course) -> tuple[Path, Path]:
    """Write reports/grades.csv and reports/report.html for the whole cohort; return both paths."""
    results = collect_results(course)
    students = sorted({r.student for r in results} | set(all_students(course)))
    usage = {student: learner_usage(course, student) for student in students}
    folder = course.folder("reports")
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, html_path = folder / "grades.csv", folder / "report.html"
    grades_frame(results).to_csv(csv_path, index=False)
    html_path.write_text(report_html(results, usage, fetch_hub_figures()), encoding="utf-8")
    return csv_path, html_path
