"""What the hub made on this machine, kept so that `marketlab hub stop` can take it back.

`marketlab hub start` and the spawner add to one JSON file in the hub's state folder (root's alone):
the folders it let the hub's groups pass through (ACL grants), the system accounts and groups it
created. Nothing else is ever undone: an account or a grant the hub did not make is not in here.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RECORD_FILE = "made.json"
KINDS = ("grants", "accounts", "groups")


def record_path(state: Path) -> Path:
    return state / RECORD_FILE


def read(state: Path) -> dict[str, list[Any]]:
    """The record (empty lists where nothing was made, or no record yet)."""
    try:
        data = json.loads(record_path(state).read_text())
    except FileNotFoundError:
        data = {}
    except (OSError, json.JSONDecodeError) as exc:
        from .settings import HubError

        raise HubError(f"The hub's record of what it made ({record_path(state)}) cannot be read: {exc}.",
                       "Undo its grants by hand (`getfacl` shows them) and remove the file.") from None
    return {kind: list(data.get(kind, [])) for kind in KINDS}


@contextmanager
def _editing(state: Path) -> Iterator[dict[str, list[Any]]]:
    """The record, locked against the hub's other writers, written back whole when the block ends."""
    lock_fd = os.open(state / (RECORD_FILE + ".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        data = read(state)
        yield data
        temporary = record_path(state).with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=1)
        os.replace(temporary, record_path(state))
    finally:
        os.close(lock_fd)


def add(state: Path, kind: str, item: Any) -> None:
    """Note one thing the hub made (a grant {"folder", "group"}, an account name, a group name)."""
    with _editing(state) as data:
        if item not in data[kind]:
            data[kind].append(item)


def remove(state: Path, kind: str, item: Any) -> None:
    """Forget one thing once it has been taken back."""
    with _editing(state) as data:
        data[kind] = [known for known in data[kind] if known != item]
