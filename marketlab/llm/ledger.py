"""The usage ledger: one SQLite row per model call made through marketlab.llm.client().

Only what a call cost is recorded: time, backend, model, tokens, latency, status and the kind of
error (one of ERROR_KINDS). Request headers, keys, message texts and the provider's error text are
never read into it.
"""

from __future__ import annotations

import json
import sqlite3
import time
import weakref
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import config
from .errors import UsageError
from .prices import estimate_cost

RECORDED_PATHS = ("/chat/completions", "/completions", "/responses", "/embeddings")
# The only values the ledger's `error` column ever holds.
ERROR_KINDS = ("rate_limit", "server_error", "timeout", "connection", "auth", "bad_request", "not_found", "other")
COLUMNS = ("ts", "backend", "model", "endpoint", "status", "prompt_tokens", "completion_tokens",
           "latency_ms", "cost_usd", "stream", "error")
SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    backend TEXT NOT NULL,
    model TEXT,
    endpoint TEXT NOT NULL,
    status INTEGER,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    latency_ms REAL,
    cost_usd REAL,
    stream INTEGER NOT NULL DEFAULT 0,
    error TEXT
)"""


def _connect(path: Path | None = None) -> sqlite3.Connection:
    connection = sqlite3.connect(path or config.ledger_path(), timeout=30)
    connection.execute(SCHEMA)
    return connection


def record(*, backend: str, model: str | None, endpoint: str, status: int | None,
           prompt_tokens: int | None, completion_tokens: int | None, latency_ms: float,
           stream: bool = False, error: str | None = None, path: Path | None = None) -> None:
    """Append one call to the ledger; `error` must be one of ERROR_KINDS (or None)."""
    if error is not None and error not in ERROR_KINDS:
        raise ValueError(f"ledger error kind {error!r} is not one of {', '.join(ERROR_KINDS)}")
    row = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "backend": backend, "model": model, "endpoint": endpoint, "status": status,
        "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
        "latency_ms": round(latency_ms, 1),
        "cost_usd": estimate_cost(model or "", prompt_tokens, completion_tokens, backend),
        "stream": int(stream), "error": error,
    }
    with _connect(path) as connection:
        connection.execute(f"INSERT INTO calls ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                           [row[c] for c in COLUMNS])
    connection.close()


def usage_table(limit: int | None = None, path: Path | None = None) -> pd.DataFrame:
    """The ledger's rows, newest last (the last `limit` rows if given)."""
    connection = _connect(path)
    try:
        query = f"SELECT {', '.join(COLUMNS)} FROM calls ORDER BY id"
        if limit:
            query = f"SELECT * FROM ({query} DESC LIMIT {int(limit)}) ORDER BY ts"
        frame = pd.read_sql_query(query, connection)
    finally:
        connection.close()
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
    return frame


def summary(path: Path | None = None, days: int | None = None) -> pd.DataFrame:
    """Calls, tokens (whole numbers), cost and mean latency by day and model; `days=1` is today only."""
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 1):
        raise UsageError(f"days must be a whole number of 1 or more (1 means today only); it is {days!r}.",
                         "Pass days=1 for today, days=7 for the last week, or leave it out for everything.")
    frame = usage_table(path=path)
    if days is not None and not frame.empty:
        frame = frame[frame["ts"] >= pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=days - 1)]
    if frame.empty:
        return pd.DataFrame(columns=["day", "backend", "model", "calls", "failed", "prompt_tokens",
                                     "completion_tokens", "cost_usd", "mean_latency_ms"])
    frame = frame.assign(day=frame["ts"].dt.strftime("%Y-%m-%d"), failed=(frame["status"] != 200).astype(int))
    grouped = frame.groupby(["day", "backend", "model"], dropna=False).agg(
        calls=("status", "size"), failed=("failed", "sum"), prompt_tokens=("prompt_tokens", "sum"),
        completion_tokens=("completion_tokens", "sum"), cost_usd=("cost_usd", lambda s: s.sum(min_count=1)),
        mean_latency_ms=("latency_ms", "mean"))
    # A failed call has no token counts (NULL), which would turn the sums into floats.
    tokens = ["prompt_tokens", "completion_tokens"]
    grouped[tokens] = grouped[tokens].round().astype("Int64")
    return grouped.reset_index()


# -- recording calls made through the SDK ---------------------------------------------------

def _usage_of(payload: dict[str, Any]) -> tuple[int | None, int | None]:
    usage = payload.get("usage") or {}
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    return prompt, completion


def error_kind(status: int | None = None, exc: BaseException | None = None) -> str:
    """The ledger's word for a failed call, from ERROR_KINDS: never text the provider sent.

    A provider may echo anything, even part of a key, in its error's message, type or code, so only
    the HTTP status or the kind of transport failure decides.
    """
    if exc is not None:
        return "timeout" if isinstance(exc, httpx2.TimeoutException) else "connection"
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    if status == 429:
        return "rate_limit"
    if status is not None and 400 <= status < 500:
        return "bad_request"
    if status is not None and status >= 500:
        return "server_error"
    return "other"


def _model_of(request: httpx2.Request) -> tuple[str | None, bool]:
    try:
        body = json.loads(request.content or b"{}")
    except (ValueError, httpx2.RequestNotRead):
        return None, False
    if not isinstance(body, dict):
        return None, False
    return body.get("model"), bool(body.get("stream"))


class _RecordingStream(httpx2.SyncByteStream):
    """Passes a streamed body through unchanged and records the call when it is closed."""

    def __init__(self, inner: Any, finish: Callable[[bytes], None]) -> None:
        self._inner, self._finish, self._done = inner, finish, False
        self._parts: list[bytes] = []

    def __iter__(self) -> Iterator[bytes]:
        for part in self._inner:
            self._parts.append(part)
            yield part

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            if not self._done:
                self._done = True
                self._finish(b"".join(self._parts))


def _stream_usage(raw: bytes, encoding: str) -> tuple[int | None, int | None, str | None]:
    if encoding in ("gzip", "deflate"):
        try:
            raw = zlib.decompress(raw, 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
        except zlib.error:
            return None, None, None
    prompt = completion = None
    content_chunks = 0
    for line in raw.decode("utf-8", "replace").splitlines():
        if not line.startswith("data:") or line.strip() == "data: [DONE]":
            continue
        try:
            chunk = json.loads(line[5:])
        except ValueError:
            continue
        if chunk.get("usage"):
            prompt, completion = _usage_of(chunk)
        for choice in chunk.get("choices") or []:
            if (choice.get("delta") or {}).get("content"):
                content_chunks += 1
    # Without stream_options.include_usage the provider sends no counts: one chunk is about one token.
    return prompt, completion if completion is not None else content_chunks, None


class RecordingTransport(httpx2.BaseTransport):
    """Wraps a transport so that calls failing before any response (timeouts, refused) are recorded too."""

    def __init__(self, backend: str, inner: httpx2.BaseTransport | None = None, path: Path | None = None) -> None:
        self._backend, self._inner, self._path = backend, inner or httpx2.HTTPTransport(), path

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        start = time.perf_counter()
        try:
            return self._inner.handle_request(request)
        except httpx2.TransportError as exc:
            if request.url.path.endswith(RECORDED_PATHS):
                model, stream = _model_of(request)
                record(backend=self._backend, model=model, endpoint=request.url.path.rsplit("/v1", 1)[-1],
                       status=None, prompt_tokens=None, completion_tokens=None,
                       latency_ms=(time.perf_counter() - start) * 1000, stream=stream,
                       error=error_kind(exc=exc), path=self._path)
            raise

    def close(self) -> None:
        self._inner.close()


def event_hooks(backend: str, path: Path | None = None) -> dict[str, list[Callable[..., None]]]:
    """httpx2 event hooks that record every model call of a client into the ledger."""
    started: weakref.WeakKeyDictionary[httpx2.Request, float] = weakref.WeakKeyDictionary()

    def on_request(request: httpx2.Request) -> None:
        if request.url.path.endswith(RECORDED_PATHS):
            started[request] = time.perf_counter()
            if _model_of(request)[1]:
                request.headers["accept-encoding"] = "identity"  # lets the recorder read the stream as sent

    def on_response(response: httpx2.Response) -> None:
        request = response.request
        if request not in started:
            return
        model, stream = _model_of(request)
        endpoint = request.url.path.rsplit("/v1", 1)[-1]

        def latency() -> float:
            return (time.perf_counter() - started.get(request, time.perf_counter())) * 1000

        if stream and response.status_code == 200:
            encoding = response.headers.get("content-encoding", "identity")

            def finish(raw: bytes) -> None:
                prompt, completion, _ = _stream_usage(raw, encoding)
                record(backend=backend, model=model, endpoint=endpoint, status=200, prompt_tokens=prompt,
                       completion_tokens=completion, latency_ms=latency(), stream=True, path=path)

            response.stream = _RecordingStream(response.stream, finish)
            return
        response.read()
        try:
            payload = response.json()
        except ValueError:
            payload = None
        prompt, completion = _usage_of(payload) if isinstance(payload, dict) else (None, None)
        if isinstance(payload, dict) and payload.get("model"):
            model = payload["model"]
        record(backend=backend, model=model, endpoint=endpoint, status=response.status_code,
               prompt_tokens=prompt, completion_tokens=completion, latency_ms=latency(),
               stream=stream, error=error_kind(response.status_code) if response.status_code >= 400 else None,
               path=path)

    return {"request": [on_request], "response": [on_response]}


# -- the learner usage file -------------------------------------------------------------------

MAX_USAGE_FILE_BYTES = 1_000_000  # a real usage file is a few hundred bytes; anything huge is not one


class _ModelUsage(BaseModel):
    """One (backend, model) line of a learner usage file."""

    model_config = ConfigDict(extra="ignore")

    backend: str = Field(min_length=1, max_length=200)
    model: str | None = Field(default=None, max_length=200)
    calls: int = Field(ge=0, strict=True)
    prompt_tokens: int = Field(ge=0, strict=True)
    completion_tokens: int = Field(ge=0, strict=True)
    cost_usd: float | None = Field(ge=0, strict=True, allow_inf_nan=False)
    errors: int = Field(ge=0, strict=True)


class _UsageFile(BaseModel):
    """The whole learner usage file."""

    model_config = ConfigDict(extra="ignore")

    exported_at: datetime
    since: datetime | None = None
    models: list[_ModelUsage]


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _count(value: Any) -> int:
    return 0 if value is None or pd.isna(value) else int(value)


def _is_error(row: dict[str, Any]) -> bool:
    status, error = row["status"], row["error"]
    failed_status = status is not None and not pd.isna(status) and int(status) >= 400
    return failed_status or (error is not None and not pd.isna(error))


def _aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str | None], dict[str, Any]] = {}
    for row in rows:
        model = None if row["model"] is None or pd.isna(row["model"]) else str(row["model"])
        entry = groups.setdefault((str(row["backend"]), model), {
            "backend": str(row["backend"]), "model": model, "calls": 0, "prompt_tokens": 0,
            "completion_tokens": 0, "cost_usd": 0.0, "errors": 0})
        entry["calls"] += 1
        entry["prompt_tokens"] += _count(row["prompt_tokens"])
        entry["completion_tokens"] += _count(row["completion_tokens"])
        failed = _is_error(row)
        entry["errors"] += int(failed)
        cost = row["cost_usd"]
        if (cost is None or pd.isna(cost)) and failed and _count(row["prompt_tokens"]) == 0:
            cost = 0.0  # a call that failed before using any tokens is not billed
        if cost is None or pd.isna(cost) or entry["cost_usd"] is None:
            entry["cost_usd"] = None
        else:
            entry["cost_usd"] += float(cost)
    return [groups[key] for key in sorted(groups, key=lambda k: (k[0], k[1] or ""))]


def export_usage(path: Path, *, since: datetime | None = None, ledger: Path | None = None) -> dict[str, Any]:
    """Write the learner usage file (calls, tokens, cost, errors per backend and model) and return it."""
    frame = usage_table(path=ledger)
    if since is not None:
        frame = frame[frame["ts"] >= pd.Timestamp(_utc(since))]
    rows = frame[["backend", "model", "status", "prompt_tokens", "completion_tokens", "cost_usd", "error"]]
    usage = {
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "since": _utc(since).isoformat(timespec="seconds") if since is not None else None,
        "models": _aggregate(rows.astype(object).to_dict("records")),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(usage, indent=2) + "\n")
    partial.replace(path)
    return usage


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "the top level"
    more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
    return f"{where}: {error['msg']}{more}"


def read_usage(path: Path) -> list[dict[str, Any]]:
    """The per-model lines of a learner usage file; UsageError (a ValueError) saying what is wrong."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_USAGE_FILE_BYTES:
            raise UsageError(f"{path.name} is not a usage file: it is larger than {MAX_USAGE_FILE_BYTES} bytes.")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path.name} cannot be read ({type(exc).__name__}).") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path.name} is not valid JSON (line {getattr(exc, 'lineno', '?')}): "
                         "it may have been edited by hand or cut off while saving.") from exc
    try:
        parsed = _UsageFile.model_validate(data)
    except ValidationError as exc:
        raise UsageError(f"{path.name} is not a valid usage file: {_first_problem(exc)}.") from exc
    return [entry.model_dump() for entry in parsed.models]
