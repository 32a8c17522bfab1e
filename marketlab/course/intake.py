"""Submissions enter as data: only plain files of expected kinds and sizes, never links or devices.

Used wherever learner files cross into the instructor's side: `collect` (from the exchange or an
LMS zip), and `autograde` (the collected folder, and the sandbox's private copy). Folders are
walked through directory file descriptors with O_NOFOLLOW, so a link swapped in while we copy is
refused rather than followed, also when running as root.
"""

from __future__ import annotations

import os
import shutil
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path

KINDS = frozenset({".ipynb", ".py", ".yaml", ".yml", ".json", ".csv", ".txt", ".md", ".parquet", ".png", ".jpg",
                   ".jpeg", ".svg", ".html", ".tsv", ".xlsx"})
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_TOTAL_BYTES = 100 * 1024 * 1024
MAX_FILES = 300
MAX_DEPTH = 4
SKIP_DIRS = frozenset({".ipynb_checkpoints", "__pycache__", ".marketlab"})


@dataclass(frozen=True)
class Refused:
    """A file left out, and why (a catalogue-style word, never learner text)."""

    name: str
    why: str  # link, device, hard_link, too_large, kind, too_many, too_deep, name


MAX_NAME_CHARS = 120


def _safe_name(name: str) -> bool:
    """A name that is text: valid UTF-8, no control characters, not too long (nothing to escape later)."""
    if not name or name in (".", "..") or "/" in name or len(name) > MAX_NAME_CHARS:
        return False
    try:
        name.encode("utf-8")  # os.listdir gives undecodable bytes as lone surrogates, which fail here
    except UnicodeEncodeError:
        return False
    return not any(unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp") for char in name)


def shown_name(name: str) -> str:
    """A name as it may appear in a record or feedback: undecodable bytes and control characters escaped."""
    raw = os.fsencode(name) if isinstance(name, str) else bytes(name)
    text = raw.decode("utf-8", errors="backslashreplace")
    return "".join(char if unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Zl", "Zp")
                   else f"\\x{ord(char):02x}" for char in text)[:MAX_NAME_CHARS]


def copy_tree(source: Path, destination: Path) -> list[Refused]:
    """Copy the plain files of source into a new folder destination; what was left out, and why."""
    destination.mkdir(parents=True, exist_ok=False)
    refused: list[Refused] = []
    if not source.exists():
        return refused
    try:
        top = os.open(source, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return [Refused(source.name, "link")]
    budget = {"files": 0, "bytes": 0}
    try:
        _copy_dir(top, destination, "", 0, refused, budget)
    finally:
        os.close(top)
    return refused


def _copy_dir(dir_fd: int, destination: Path, prefix: str, depth: int, refused: list[Refused],
              budget: dict[str, int]) -> None:
    for name in sorted(os.listdir(dir_fd)):
        shown = f"{prefix}{shown_name(name)}"[:MAX_NAME_CHARS]
        if not _safe_name(name):
            refused.append(Refused(shown, "name"))
            continue
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISLNK(info.st_mode):
            refused.append(Refused(shown, "link"))
        elif stat.S_ISDIR(info.st_mode):
            if name in SKIP_DIRS:
                continue
            if depth >= MAX_DEPTH:
                refused.append(Refused(shown, "too_deep"))
                continue
            try:
                child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            except OSError:
                refused.append(Refused(shown, "link"))
                continue
            try:
                (destination / name).mkdir()
                _copy_dir(child, destination / name, f"{shown}/", depth + 1, refused, budget)
            finally:
                os.close(child)
        elif not stat.S_ISREG(info.st_mode):
            refused.append(Refused(shown, "device"))
        elif Path(name).suffix.lower() not in KINDS and name != "timestamp.txt":
            refused.append(Refused(shown, "kind"))
        else:
            _copy_file(dir_fd, name, destination / name, shown, refused, budget)


def _copy_file(dir_fd: int, name: str, target: Path, shown: str, refused: list[Refused],
               budget: dict[str, int]) -> None:
    try:
        handle = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        refused.append(Refused(shown, "link"))
        return
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            refused.append(Refused(shown, "device"))
        elif info.st_nlink > 1:
            refused.append(Refused(shown, "hard_link"))  # could be another user's file, linked in
        elif info.st_size > MAX_FILE_BYTES or budget["bytes"] + info.st_size > MAX_TOTAL_BYTES:
            refused.append(Refused(shown, "too_large"))
        elif budget["files"] >= MAX_FILES:
            refused.append(Refused(shown, "too_many"))
        else:
            budget["files"] += 1
            budget["bytes"] += info.st_size
            out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            try:
                left = MAX_FILE_BYTES + 1
                while left > 0:
                    chunk = os.read(handle, min(1 << 20, left))
                    if not chunk:
                        break
                    os.write(out, chunk)
                    left -= len(chunk)
            finally:
                os.close(out)
    finally:
        os.close(handle)


def scrub(folder: Path) -> list[Refused]:
    """Make a collected folder plain in place: unlink every entry copy_tree would refuse (links are
    removed, never followed). For folders filled by hand or by older tools."""
    if not folder.is_dir() or folder.is_symlink():
        return []
    staging = folder.with_name(f".{folder.name}.scrub")
    if staging.exists():
        shutil.rmtree(staging)
    refused = copy_tree(folder, staging)
    if refused:
        shutil.rmtree(folder)
        staging.rename(folder)
    else:
        shutil.rmtree(staging)
    return refused


def read_text(folder: Path, name: str, limit: int = 1024 * 1024) -> str | None:
    """A plain file's text from a learner's folder, without following links; None if absent or refused."""
    try:
        top = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        handle = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=top)
    except OSError:
        return None
    finally:
        os.close(top)
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        return os.read(handle, limit).decode("utf-8", errors="replace")
    finally:
        os.close(handle)
