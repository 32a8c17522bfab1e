"""Live progress: each visible check reports pass or fail to the hub; instructors see a grid of who is stuck.

What is recorded per attempt: the learner (from their hub token, never from the request), the lab,
the exercise (the check's name), pass or fail, how many problems it found and which hint was shown
(a short fingerprint of the hint's text). Never code, answers, prompts or model replies. Learners see
this at /services/marketlab/ (their own attempts) and in the first check's output.
"""

from __future__ import annotations

import ast
import functools
import re
import sqlite3
import time
from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tornado import web

from .identity import ServiceHandler
from .usage import today

SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    learner TEXT NOT NULL,
    lab TEXT NOT NULL,
    exercise TEXT NOT NULL,
    passed INTEGER NOT NULL,
    problems INTEGER NOT NULL,
    hint TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_ts ON attempts (ts);
"""
RECENT_S = 600               # "the last ten minutes" of the grid's headline
ATTEMPTS_PER_MINUTE = 120    # more than any person runs checks; the rest is refused, not stored
TEMPLATES = Environment(loader=PackageLoader("marketlab.hub", "templates"),
                        autoescape=select_autoescape(["html", "j2"]))
TEMPLATES.filters["clock"] = lambda ts: datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


class Attempt(BaseModel):
    """What a visible check sends: plain, bounded fields only."""

    model_config = ConfigDict(extra="forbid")
    lab: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")
    exercise: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_. -]{0,79}$")
    passed: bool
    problems: int = Field(0, ge=0, le=10_000)
    hint: str = Field("", pattern=r"^[0-9a-f]{0,12}$")


@functools.cache
def known_checks() -> dict[str, frozenset[str]]:
    """The name of every visible check, per lab ("lab03", "capstone"), read from marketlab/checks/ itself.

    A learner's server can post anything: only these names reach the grid and its headline.
    """
    import marketlab.checks

    found: dict[str, frozenset[str]] = {}
    for path in sorted(Path(marketlab.checks.__file__).parent.glob("*.py")):
        if not re.fullmatch(r"lab\d\d|capstone", path.stem):
            continue
        names = {node.args[0].value for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "CheckResult"
                 and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)}
        found[path.stem] = frozenset(names)
    return found


def is_known(lab: str, exercise: str) -> bool:
    """Whether this is a real check of that lab."""
    return exercise in known_checks().get(lab, frozenset())


class Attempts:
    """The attempts store (SQLite in the gateway's folder)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        with self._connect() as db:
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def add(self, learner: str, attempt: Attempt) -> bool:
        """Store one attempt; False when the learner is over the per-minute cap."""
        now = time.time()
        recent = self._recent[learner]
        while recent and recent[0] <= now - 60:
            recent.popleft()
        if len(recent) >= ATTEMPTS_PER_MINUTE:
            return False
        recent.append(now)
        with self._connect() as db:
            db.execute("INSERT INTO attempts (ts, learner, lab, exercise, passed, problems, hint) "
                       "VALUES (?,?,?,?,?,?,?)",
                       (now, learner, attempt.lab, attempt.exercise, int(attempt.passed), attempt.problems,
                        attempt.hint))
        return True

    def rows(self, learner: str | None = None, since: float = 0.0) -> list[dict[str, Any]]:
        """Attempts, oldest first (one learner's, or everyone's)."""
        query = "SELECT ts, learner, lab, exercise, passed, problems, hint FROM attempts WHERE ts >= ?"
        args: list[Any] = [since]
        if learner is not None:
            query += " AND learner = ?"
            args.append(learner)
        with self._connect() as db:
            found = db.execute(query + " ORDER BY id", args).fetchall()
        keys = ("ts", "learner", "lab", "exercise", "passed", "problems", "hint")
        return [dict(zip(keys, row)) | {"passed": bool(row[4])} for row in found]


def grid(rows: list[dict[str, Any]], now: float | None = None) -> dict[str, Any]:
    """Learners x exercises (latest state and attempt count), and the most-failed check of the last ten minutes."""
    now = time.time() if now is None else now
    rows = [r for r in rows if is_known(r["lab"], r["exercise"])]  # stored before names were checked: ignored
    exercises = sorted({(r["lab"], r["exercise"]) for r in rows})
    learners = sorted({r["learner"] for r in rows})
    cells: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rows:
        cell = cells.setdefault((r["learner"], r["lab"], r["exercise"]), {"attempts": 0, "failed": 0})
        cell["attempts"] += 1
        cell["failed"] += not r["passed"]
        cell["passed"] = r["passed"]
        cell["last"] = r["ts"]
    recent_fails: dict[tuple[str, str], set[str]] = defaultdict(set)
    fail_counts: dict[tuple[str, str], int] = defaultdict(int)
    for r in rows:
        if not r["passed"] and r["ts"] >= now - RECENT_S:
            recent_fails[(r["lab"], r["exercise"])].add(r["learner"])
            fail_counts[(r["lab"], r["exercise"])] += 1
    ranked = sorted(fail_counts, key=lambda k: (-fail_counts[k], -len(recent_fails[k]), k))
    hot = [{"lab": k[0], "exercise": k[1], "fails": fail_counts[k], "learners": sorted(recent_fails[k])}
           for k in ranked]
    # Stuck: the latest attempt failed and the learner has failed it three times or more.
    table = [{"learner": learner,
              "cells": [cells.get((learner, lab, ex)) for lab, ex in exercises],
              "stuck": sum(1 for lab, ex in exercises
                           if (c := cells.get((learner, lab, ex))) and not c["passed"] and c["failed"] >= 3)}
             for learner in learners]
    return {"exercises": [{"lab": lab, "exercise": ex} for lab, ex in exercises], "rows": table, "hot": hot}


def per_exercise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For the cohort report: attempts, learners who tried and learners who passed, per exercise."""
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        item = totals.setdefault((r["lab"], r["exercise"]),
                                 {"lab": r["lab"], "exercise": r["exercise"], "attempts": 0, "failed": 0,
                                  "tried": set(), "passed": set()})
        item["attempts"] += 1
        item["failed"] += not r["passed"]
        item["tried"].add(r["learner"])
        if r["passed"]:
            item["passed"].add(r["learner"])
    return [{**v, "tried": len(v["tried"]), "passed": len(v["passed"])} for _, v in sorted(totals.items())]


class AttemptHandler(ServiceHandler):
    """POST /attempts from a learner's visible check (their server's hub token)."""

    def check_xsrf_cookie(self) -> None:
        """Token-authenticated (a cookie alone is refused below), so no cross-site form can post here."""

    async def post(self) -> None:
        if not self.by_token:
            raise web.HTTPError(401, "a hub token is needed")
        if len(self.request.body) > 2000:
            raise web.HTTPError(413)
        try:
            attempt = Attempt.model_validate_json(self.request.body)
        except ValidationError as exc:
            raise web.HTTPError(400, str(exc.errors()[0]["msg"])) from None
        if not is_known(attempt.lab, attempt.exercise):
            raise web.HTTPError(400, "not a check of that lab")
        if not self.service.attempts.add(self.current_user["name"], attempt):
            raise web.HTTPError(429)
        self.set_status(204)


class ProgressHandler(ServiceHandler):
    """GET /progress (HTML) and /progress.json: the live grid, for instructors only."""

    @web.authenticated
    async def get(self, suffix: str = "") -> None:
        if not self.instructor:
            raise web.HTTPError(403, "The progress grid is for instructors.")
        data = grid(self.service.attempts.rows(since=time.time() - 86400 * 7))
        if suffix == ".json":
            self.finish(data)
            return
        self.finish(TEMPLATES.get_template("progress.html.j2").render(
            **data, updated=datetime.now(UTC).strftime("%H:%M:%S UTC"), minutes=RECENT_S // 60,
            model=self.service.model.as_dict()))


class ReportHandler(ServiceHandler):
    """GET /report.json: attempts per exercise and model usage per learner, for `marketlab course report`."""

    async def get(self) -> None:
        if self.current_user is None:
            raise web.HTTPError(401)
        if not self.instructor:
            raise web.HTTPError(403, "The cohort figures are for instructors.")
        self.finish({"exercises": per_exercise(self.service.attempts.rows()),
                     "usage": self.service.ledger.per_learner()})


class MineHandler(ServiceHandler):
    """GET / : what the hub records about the person looking (their attempts and today's model usage)."""

    @web.authenticated
    async def get(self) -> None:
        name = self.current_user["name"]
        since = (datetime.now(UTC) - timedelta(days=30)).timestamp()
        usage = [u for u in self.service.ledger.per_learner(today()) if u["learner"] == name]
        self.finish(TEMPLATES.get_template("mine.html.j2").render(
            name=name, attempts=self.service.attempts.rows(learner=name, since=since)[-200:],
            usage=usage[0] if usage else None, daily=self.service.settings.allowance.daily_tokens,
            instructor=self.instructor))


def handlers(prefix: str, service: Any) -> list[tuple[str, type, dict[str, Any]]]:
    """Tornado routes of live progress under the service's prefix."""
    options = {"service": service}
    return [(rf"{prefix}attempts/?", AttemptHandler, options),
            (rf"{prefix}progress(\.json)?/?", ProgressHandler, options),
            (rf"{prefix}report\.json", ReportHandler, options),
            (rf"{prefix}?", MineHandler, options)]
