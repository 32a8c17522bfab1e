"""System accounts of the hub: one per person, created on first start, never an account the hub did not make.

A hub name becomes a system account of the same name (so nbgrader's exchange can check who owns a
submission). An existing system account is used only if it belongs to the hub's learner or
instructor group: a learner who signs up as `root`, `daemon` or any other machine account gets a
refusal, never that account's rights.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import record
from .settings import (
    GATEWAY_ACCOUNT,
    INSTRUCTOR_SYSTEM_GROUP,
    LEARNER_SYSTEM_GROUP,
    HubError,
    HubSettings,
    check_username,
)


@dataclass(frozen=True)
class Account:
    """A system account the hub runs someone's server as."""

    name: str
    uid: int
    gid: int
    home: Path
    instructor: bool


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise HubError(f"`{' '.join(argv)}` failed: {done.stderr.strip() or done.returncode}",
                       "Start the hub as root on a machine with the shadow utilities (useradd, groupadd).")


def ensure_group(name: str, state: Path | None = None) -> int:
    """The gid of a system group, made if missing (and then noted in the hub's record under `state`)."""
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        _run(["groupadd", "--system", name])
        if state is not None:
            record.add(state, "groups", name)
        return grp.getgrnam(name).gr_gid


def _gid(group: str) -> int | None:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None



def ensure_account(name: str, settings: HubSettings, *, instructor: bool) -> Account:
    """The system account for a hub user, created on first use; HubError if the name is not the hub's."""
    check_username(name)
    group = INSTRUCTOR_SYSTEM_GROUP if instructor else LEARNER_SYSTEM_GROUP
    gid = ensure_group(group, settings.state)
    other = LEARNER_SYSTEM_GROUP if instructor else INSTRUCTOR_SYSTEM_GROUP
    home = settings.homes / name
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        entry = None
    if entry is None:
        settings.homes.mkdir(parents=True, exist_ok=True)
        _run(["useradd", "--home-dir", str(home), "--no-create-home", "--shell", "/bin/bash",
              "--gid", group, "--no-user-group", "--comment", "marketlab hub user", name])
        record.add(settings.state, "accounts", name)
        entry = pwd.getpwnam(name)
    elif entry.pw_gid not in {gid, _gid(other)}:
        raise HubError(f"The hub user {name!r} has the same name as a system account that the hub did not create.",
                       "Ask the hub administrator to delete this hub user and sign up with another name.")
    if entry.pw_uid == 0 or Path(entry.pw_dir) != home:
        raise HubError(f"The system account {name!r} is not one of the hub's "
                       f"(uid {entry.pw_uid}, home {entry.pw_dir}).",
                       "Ask the hub administrator to delete this hub user and sign up with another name.")
    if entry.pw_gid != gid:  # promoted to instructor (or back): move the account to its group
        _run(["usermod", "--gid", group, name])
        entry = pwd.getpwnam(name)
    _make_home(home, entry.pw_uid, entry.pw_gid)
    return Account(name, entry.pw_uid, entry.pw_gid, home, instructor)


def _make_home(home: Path, uid: int, gid: int) -> None:
    """The person's home, theirs alone (0700), made without following a link planted in its place."""
    try:
        os.mkdir(home, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(home)
    if not stat.S_ISDIR(info.st_mode):
        raise HubError(f"{home} is not a folder.", "Remove it (it was not made by the hub) and start the server again.")
    if info.st_uid != uid or info.st_gid != gid:
        os.chown(home, uid, gid, follow_symlinks=False)
    os.chmod(home, 0o700)  # checked above: a folder, not a link


def ensure_gateway_account(state: Path) -> tuple[int, int]:
    """The uid and gid the gateway service runs as: a system account with no login and no home of its own."""
    try:
        entry = pwd.getpwnam(GATEWAY_ACCOUNT)
    except KeyError:
        _run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
              "--user-group", GATEWAY_ACCOUNT])
        record.add(state, "accounts", GATEWAY_ACCOUNT)
        record.add(state, "groups", GATEWAY_ACCOUNT)
        entry = pwd.getpwnam(GATEWAY_ACCOUNT)
    return entry.pw_uid, entry.pw_gid



def grant_traversal(paths: list[Path], groups: list[str], state: Path) -> list[Path]:
    """Let the hub's groups pass through (x only, never list) each folder above `paths` that others cannot.

    Python often lives under /root (pyenv in containers and CI): without this no account of the hub
    could start Python at all. Each grant is noted in the hub's record (`marketlab hub stop
    --undo-grants` takes it back). Returns the folders changed, for the start-up message.
    """
    changed: list[Path] = []
    for path in paths:
        for folder in reversed(Path(path).resolve().parents):
            mode = folder.stat().st_mode
            if mode & stat.S_IXOTH or folder in changed:
                continue
            for group in groups:
                record.add(state, "grants", {"folder": str(folder), "group": group})
                _run(["setfacl", "-m", f"g:{group}:x", str(folder)])
            changed.append(folder)
    return changed


def take_back_grant(folder: str, group: str) -> str | None:
    """Remove one pass-through grant; None when done (or already gone), else why not."""
    done = subprocess.run(["setfacl", "-x", f"g:{group}", folder], capture_output=True, text=True)
    if done.returncode != 0 and Path(folder).exists() and _gid(group) is not None:
        return done.stderr.strip() or f"setfacl exited with {done.returncode}"
    return None
