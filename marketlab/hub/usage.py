"""The gateway's ledger and allowances: tokens per learner per day, requests per minute, requests in flight.

Every request the gateway answers or refuses is one row (learner, model, tokens, status, the kind of
refusal); message texts, keys and tokens of the hub are never written. A learner's day is the UTC day.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..errors import MarketlabError
from .settings import Allowance

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    day TEXT NOT NULL,
    learner TEXT NOT NULL,
    model TEXT,
    status INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    latency_ms REAL,
    stream INTEGER NOT NULL DEFAULT 0,
    refused TEXT
);
CREATE INDEX IF NOT EXISTS calls_day_learner ON calls (day, learner);
"""
REFUSALS = ("budget", "rate_limit", "upstream")


def today() -> str:
    """The ledger's day: today's UTC date."""
    return datetime.now(UTC).date().isoformat()


def resets_at() -> datetime:
    """When today's allowance starts again (the next midnight UTC)."""
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)


@dataclass(frozen=True)
class Call:
    """One answered or refused request, as the ledger keeps it."""

    learner: str
    model: str | None
    status: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float | None = None
    stream: bool = False
    refused: str | None = None


class Ledger:
    """The gateway's SQLite ledger (in the gateway's own folder)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with self._connect() as db:
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def record(self, call: Call) -> None:
        """Append one call."""
        if call.refused is not None and call.refused not in REFUSALS:
            raise ValueError(f"refusal kind {call.refused!r} is not one of {REFUSALS}")
        now = datetime.now(UTC)
        with self._connect() as db:
            db.execute("INSERT INTO calls (ts, day, learner, model, status, prompt_tokens, completion_tokens, "
                       "latency_ms, stream, refused) VALUES (?,?,?,?,?,?,?,?,?,?)",
                       (now.isoformat(timespec="milliseconds"), now.date().isoformat(), call.learner, call.model,
                        call.status, call.prompt_tokens, call.completion_tokens, call.latency_ms, int(call.stream),
                        call.refused))

    def used_today(self, learner: str) -> int:
        """Tokens a learner spent today."""
        with self._connect() as db:
            row = db.execute("SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM calls "
                             "WHERE day = ? AND learner = ?", (today(), learner)).fetchone()
        return int(row[0])

    def per_learner(self, day: str | None = None) -> list[dict[str, object]]:
        """Calls, tokens and refusals per learner (one day, or all time)."""
        where, args = ("WHERE day = ?", (day,)) if day else ("", ())
        with self._connect() as db:
            rows = db.execute(
                "SELECT learner, COUNT(*), SUM(status = 200), COALESCE(SUM(prompt_tokens), 0), "
                "COALESCE(SUM(completion_tokens), 0), SUM(refused = 'budget'), SUM(refused = 'rate_limit') "
                f"FROM calls {where} GROUP BY learner ORDER BY learner", args).fetchall()
        keys = ("learner", "calls", "answered", "prompt_tokens", "completion_tokens", "over_budget", "rate_limited")
        return [dict(zip(keys, (r[0], *(int(v or 0) for v in r[1:])))) for r in rows]


class Refused(MarketlabError):
    """The allowance says no: `kind` is 'budget' or 'rate_limit'; `retry_after` in seconds.

    The gateway answers it as OpenAI's 429 error, whose text is `message`: the problem, then the fix,
    on one line (an OpenAI client shows one line). `message` is that text, not MarketlabError's
    method of the same name, because the gateway and its tests read it as a string.
    """

    headline = "❌ The hub's allowance says no."
    message: str  # type: ignore[assignment]  # the one-line text the gateway sends (see the docstring)

    def __init__(self, kind: str, problem: str, fix: str, retry_after: int) -> None:
        super().__init__(problem, fix)
        self.kind, self.retry_after = kind, retry_after
        self.message = f"{self.problem} {self.fix}"

    def __str__(self) -> str:
        return self.message

    def _render_traceback_(self) -> list[str]:
        return [self.headline, self.message]

    def __reduce__(self) -> tuple[type, tuple[str, str, str, int]]:  # rebuilt from its own fields
        return (type(self), (self.kind, self.problem, self.fix, self.retry_after))


class Allowances:
    """Decides, before anything is sent upstream, whether a learner's request may go and how long it may be."""

    def __init__(self, allowance: Allowance, ledger: Ledger) -> None:
        self.allowance = allowance
        self.ledger = ledger
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self._reserved: dict[str, int] = defaultdict(int)
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._refused: dict[tuple[str, str], float] = {}

    def slot(self, learner: str) -> asyncio.Semaphore:
        """The learner's in-flight slots: one learner's burst waits for its own slots, not everyone's."""
        if learner not in self._slots:
            self._slots[learner] = asyncio.Semaphore(self.allowance.in_flight)
        return self._slots[learner]

    def admit(self, learner: str, prompt_estimate: int, wanted_completion: int | None) -> int:
        """Reserve tokens for one request; return its completion-token cap, or raise Refused."""
        now = time.monotonic()
        recent = self._recent[learner]
        while recent and recent[0] <= now - 60:
            recent.popleft()
        limit = self.allowance.requests_per_minute
        if len(recent) >= limit:
            wait = max(1, math.ceil(recent[0] + 60 - now))
            raise Refused("rate_limit", f"You sent {limit} requests in the last minute, the most this hub allows.",
                          f"Wait {wait} seconds and run the cell again.", wait)
        daily = self.allowance.daily_tokens
        left = daily - self.ledger.used_today(learner) - self._reserved[learner]
        if left <= prompt_estimate:
            reset = resets_at()
            hours, rest = divmod(int((reset - datetime.now(UTC)).total_seconds()), 3600)
            raise Refused("budget", f"Your daily allowance of {daily:,} tokens is used; it resets at "
                                    f"{reset:%H:%M} UTC (in {hours} h {rest // 60} min).",
                          "Ask your instructor if you need more today.", hours * 3600 + rest)
        cap = min(wanted_completion or self.allowance.max_completion_tokens, self.allowance.max_completion_tokens,
                  left - prompt_estimate)
        recent.append(now)
        self._reserved[learner] += prompt_estimate + cap
        return cap

    def first_refusal_this_minute(self, learner: str, kind: str) -> bool:
        """True for the first refusal of this kind for this learner in a minute (the ledger keeps that one)."""
        now = time.monotonic()
        if now - self._refused.get((learner, kind), -60.0) < 60:
            return False
        self._refused[(learner, kind)] = now
        return True

    def release(self, learner: str, reserved: int) -> None:
        """Give back a reservation once the call is in the ledger."""
        self._reserved[learner] = max(0, self._reserved[learner] - reserved)
