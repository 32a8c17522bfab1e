"""The response cache: an unchanged request is answered from disk, without a model call.

Backed by diskcache (bounded in size, safe to share between threads and processes). The key is a
SHA-256 of the endpoint (backend and base URL), model, messages, response schema and sampling
parameters. Only the reply is stored (content, finish reason, token counts): never the
messages, headers or key.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import diskcache

from marketlab.llm.config import home

CACHE_DIR = "workflow-cache"


def default_path() -> Path:
    """Where the cache lives unless told otherwise: $MARKETLAB_HOME/workflow-cache/."""
    return home() / CACHE_DIR


def request_key(endpoint: str, model: str, messages: list[dict[str, Any]], schema: dict[str, Any],
                params: dict[str, Any]) -> str:
    """Stable hash of everything that decides the reply, the server that gives it included."""
    payload = json.dumps({"endpoint": endpoint, "model": model, "messages": messages, "schema": schema,
                          "params": params}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ResponseCache:
    """key -> reply, in a diskcache folder that drops the oldest replies beyond size_limit_mb."""

    def __init__(self, path: str | Path | None = None, size_limit_mb: int = 512) -> None:
        self.path = Path(path) if path is not None else default_path()
        self._cache = diskcache.Cache(str(self.path), size_limit=size_limit_mb * 1024 * 1024,
                                      eviction_policy="least-recently-stored")

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored reply for this key, or None."""
        raw = self._cache.get(key)
        return json.loads(raw) if isinstance(raw, str) else None

    def put(self, key: str, reply: dict[str, Any]) -> None:
        """Store a reply (content, finish_reason, refusal, prompt_tokens, completion_tokens)."""
        self._cache.set(key, json.dumps(reply, ensure_ascii=False))

    def count(self) -> int:
        """How many replies are stored."""
        return len(self._cache)

    def close(self) -> None:
        """Close the cache's database connections."""
        self._cache.close()
