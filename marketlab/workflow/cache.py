"""A response cache in SQLite: an unchanged request is answered from disk, without a model call.

The key is a SHA-256 of model, messages, response schema and sampling parameters. Only the
reply is stored (content, finish reason, token counts): never the messages, headers or key.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from marketlab.llm.config import home

CACHE_FILE = "workflow-cache.sqlite"
SCHEMA = """CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY, reply TEXT NOT NULL, created REAL NOT NULL)"""


def default_path() -> Path:
    """Where the cache lives unless told otherwise: $MARKETLAB_HOME/workflow-cache.sqlite."""
    return home() / CACHE_FILE


def request_key(model: str, messages: list[dict[str, Any]], schema: dict[str, Any], params: dict[str, Any]) -> str:
    """Stable hash of everything that decides the reply."""
    payload = json.dumps({"model": model, "messages": messages, "schema": schema, "params": params},
                         sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ResponseCache:
    """Thread-safe key -> reply store in one SQLite file."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(SCHEMA)
        self._db.commit()

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored reply for this key, or None."""
        with self._lock:
            row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, reply: dict[str, Any]) -> None:
        """Store a reply (content, finish_reason, refusal, prompt_tokens, completion_tokens)."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO replies (key, reply, created) VALUES (?, ?, ?)",
                             (key, json.dumps(reply, ensure_ascii=False), time.time()))
            self._db.commit()

    def count(self) -> int:
        """How many replies are stored."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
