"""A checkpoint file: every finished row is appended at once, so a killed run resumes without loss.

One JSON line per finished row, keyed by a hash of the run's settings and the row's messages.
A half-written last line (the process was killed mid-write) is ignored on resume. The file is
deleted when a run finishes every row; a run cut short by its budget keeps it, so a later run
with a larger budget continues. After that the response cache serves re-runs.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any, TextIO

from marketlab.llm.config import home

CHECKPOINT_DIR = "checkpoints"


def default_path(fingerprint: str) -> Path:
    """Automatic checkpoint file for a run: $MARKETLAB_HOME/checkpoints/<fingerprint>.jsonl."""
    return home() / CHECKPOINT_DIR / f"run-{fingerprint[:24]}.jsonl"


def row_key(fingerprint: str, messages: list[dict[str, Any]]) -> str:
    """Identity of one row's work: same settings and same messages means the same result."""
    payload = json.dumps([fingerprint, messages], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class Checkpoint:
    """Append-only record of finished rows, readable after a crash."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._handle: TextIO | None = None

    def load(self) -> dict[str, dict[str, Any]]:
        """Finished rows by key; unreadable lines (a write cut short by a kill) are skipped."""
        rows: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return rows
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("row"), dict) and entry.get("key"):
                    rows[entry["key"]] = entry["row"]
        return rows

    def append(self, key: str, row: dict[str, Any]) -> None:
        """Write one finished row; flushed before returning, so a killed process keeps it."""
        line = json.dumps({"key": key, "row": row}, ensure_ascii=False, default=str)
        with self._lock:
            if self._handle is None:
                self._handle = self.path.open("a", encoding="utf-8")
                # Start on a fresh line even if a killed run left a partial one behind.
                if self._handle.tell() > 0 and not self._ends_with_newline():
                    self._handle.write("\n")
            self._handle.write(line + "\n")
            self._handle.flush()  # in the operating system's hands: a killed process loses nothing

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as handle:
            handle.seek(-1, 2)
            return handle.read(1) == b"\n"

    def close(self) -> None:
        """Close the file (it stays on disk)."""
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None

    def remove(self) -> None:
        """Delete the file (the run finished)."""
        self.close()
        with self._lock:
            self.path.unlink(missing_ok=True)
