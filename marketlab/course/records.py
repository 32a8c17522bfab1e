"""The grading record of one submission: scores from the gradebook, reasons in plain English."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbformat

from .layout import Course
from .validate import _test_cells

SANDBOX_MARK = "marketlab grading sandbox"
REASONS = {
    "timeout": "a cell ran past the time limit and was stopped (an endless loop?)",
    "memory": "a cell tried to use more memory than a submission may",
    "cpu_time": "the notebook used more processor time than a submission may",
    "exit": "a cell called sys.exit() or exit(), which stops a notebook",
    "kernel_died": "the notebook's Python process died while running",
    "corrupt_notebook": "the notebook file is damaged and cannot be opened",
    "missing_cells": "check cells were deleted from the notebook",
    "reordered_cells": "check cells were moved out of their original order",
    "edited_tests": "check cells were edited; the original checks were run instead",
    "forbidden_read": "it tried to read the instructor's graders or hidden data",
    "forbidden_process": "it tried to start other processes",
    "network": "it tried to use the network",
    "write_outside": "it tried to write files outside its own folder",
    "huge_output": "a cell printed far too much output; it was cut",
    "sandbox": "the grading sandbox was weaker than usual on this machine",
}
NOT_THE_LEARNERS_DOING = {"sandbox"}
# Grading never interrupts a kernel except on a cell timeout, so a KeyboardInterrupt means one.
ERROR_KINDS = {"CellTimeoutError": "timeout", "KeyboardInterrupt": "timeout", "MemoryError": "memory",
               "SystemExit": "exit"}


def write_record(course: Course, record: dict[str, Any]) -> Path:
    """Write a grading record atomically (a rename never follows a planted link)."""
    record.setdefault("graded_at", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    path = course.grading_record_path(record["student"], record["lab"])
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".record-")
    with os.fdopen(handle, "w") as stream:
        json.dump(record, stream, indent=2)
    os.replace(temporary, path)
    return path


def build_record(course: Course, student: str, lab: str, problems: list[dict[str, Any]],
                 seconds: float) -> dict[str, Any]:
    """Record for a submission nbgrader graded: gradebook scores, cell errors, problems."""
    cells = _gradebook_cells(course, student, lab)
    names: dict[str, str] = {}
    for path in sorted((course.folder("autograded") / student / lab).glob("*.ipynb")):
        try:
            notebook = nbformat.read(path, as_version=4)
        except Exception:  # noqa: BLE001 - the graded copy is nbgrader's; unreadable means no detail
            continue
        names.update(_cell_names(notebook))
        for cell in notebook.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            error = _first_error(cell)
            if error is None:
                continue
            ename, evalue = error
            kind = ERROR_KINDS.get(ename)
            if kind:
                problems.append({"kind": kind, "detail": _error_detail(kind, grade_id or "?", evalue), "cell": grade_id})
            if grade_id in cells and cells[grade_id]["autograded"] and not _full(cells[grade_id]):
                cells[grade_id]["error"] = f"{ename}: {evalue}".strip()[:600]
    return _finish(student, lab, "graded", cells, _resolve_cells(problems, names), seconds)


def failed_record(course: Course, student: str, lab: str, problems: list[dict[str, Any]], log: str,
                  seconds: float) -> dict[str, Any]:
    """Record for a submission nbgrader could not grade: zero points, and why."""
    if not any(p["kind"] in ("corrupt_notebook", "kernel_died", "cpu_time") for p in problems):
        if "DeadKernelError" in log or "Kernel died" in log or "kernel died" in log.lower():
            problems.append({"kind": "kernel_died", "detail": "The notebook's Python process died while running "
                             "(it was killed, crashed, or used more than its processor-time limit). "
                             "Cells that call os._exit or kill the process cause this.", "cell": None})
        else:
            last = next((line for line in reversed(log.strip().splitlines()) if line.strip()), "no detail")
            problems.append({"kind": "error", "detail": f"nbgrader could not grade it: {last[:300]}", "cell": None})
    cells = _gradebook_cells(course, student, lab)
    for cell in cells.values():
        if cell["autograded"]:
            cell["score"] = 0.0
    record = _finish(student, lab, "failed", cells, _resolve_cells(problems, {}), seconds)
    record["log_tail"] = log.strip().splitlines()[-40:]  # for the instructor; feedback never shows it
    return record


def _finish(student: str, lab: str, status: str, cells: dict[str, dict[str, Any]],
            problems: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    graded = [c for c in cells.values() if c["autograded"]]
    unique: list[dict[str, Any]] = []
    for problem in problems:
        if not any(p["kind"] == problem["kind"] and p.get("cell") == problem.get("cell") for p in unique):
            unique.append(problem)
    return {
        "student": student, "lab": lab, "status": status,
        "reason": reason_for(unique),
        "problems": unique,
        "score": round(sum(c["score"] or 0 for c in graded), 2),
        "max_score": round(sum(c["max_score"] for c in graded), 2),
        "seconds": seconds,
        "cells": cells,
    }


def reason_for(problems: list[dict[str, Any]]) -> str:
    """One plain sentence that sums up what went wrong, or an empty string."""
    kinds = [p["kind"] for p in problems if p["kind"] not in NOT_THE_LEARNERS_DOING]
    if not kinds:
        return ""
    first = next(p for p in problems if p["kind"] == kinds[0])
    text = first["detail"] or REASONS.get(kinds[0], kinds[0])
    others = sorted({REASONS.get(k, k) for k in kinds[1:]} - {REASONS.get(kinds[0])})
    if others:
        text += " Also: " + "; ".join(others) + "."
    return text


def _gradebook_cells(course: Course, student: str, lab: str) -> dict[str, dict[str, Any]]:
    from nbgrader.api import MissingEntry

    tests = _test_cells(course.notebooks(lab))
    cells: dict[str, dict[str, Any]] = {}
    with course.gradebook() as gradebook:
        try:
            submission = gradebook.find_submission(lab, student)
        except MissingEntry:
            return cells
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                autograded = (notebook.name, grade.name) in tests
                score = grade.auto_score if autograded else grade.manual_score
                cells[grade.name] = {"notebook": notebook.name, "score": score if score is None else float(score),
                                     "max_score": float(grade.max_score), "autograded": autograded, "error": None}
    return cells


def _full(cell: dict[str, Any]) -> bool:
    return cell["score"] is not None and cell["score"] >= cell["max_score"]


def _first_error(cell: Any) -> tuple[str, str] | None:
    for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
        if output.get("output_type") == "error":
            return str(output.get("ename", "Error")), str(output.get("evalue", ""))
    return None


def _error_detail(kind: str, cell: str, evalue: str) -> str:
    if kind == "timeout":
        return f"Cell '{cell}' ran past the time limit and was stopped. Look for a loop that never ends."
    if kind == "memory":
        return f"Cell '{cell}' tried to use more memory than a submission may. Work on smaller pieces of data."
    return f"Cell '{cell}' called sys.exit({evalue}), which stops the notebook. Remove the call."


def _cell_names(notebook: Any) -> dict[str, str]:
    """ipykernel's hash of each cell's code -> a name to show (grade id, else 'cell N')."""
    from .guard import cell_hash

    names = {}
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            names[cell_hash(cell.source)] = cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {index + 1}"
    return names


def _resolve_cells(problems: list[dict[str, Any]], names: dict[str, str]) -> list[dict[str, Any]]:
    resolved = []
    for problem in problems:
        item = {"kind": problem["kind"], "detail": problem.get("detail", ""), "cell": problem.get("cell")}
        digest = problem.get("cell_hash")
        if item["cell"] is None and digest:
            item["cell"] = names.get(str(digest))
        resolved.append(item)
    return resolved
