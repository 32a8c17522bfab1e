"""`marketlab hub stop`: stop the hub and everything it started; optionally take back what it made.

Every process is found by the pid a file in the hub's own folders names, and signalled only after
its command line (and, for the model, its token) shows it is the hub's: a pid that another program
has since taken is left alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import record
from .accounts import take_back_grant
from .settings import HubError, HubSettings

HUB_WAIT_S = 90.0   # JupyterHub stops every person's server first (each gets up to 15 s)
PART_WAIT_S = 10.0  # a part left behind gets SIGTERM, then SIGKILL after this long


@dataclass
class StopReport:
    """What `stop` did, line by line, and whether anything could not be done."""

    lines: list[str] = field(default_factory=list)
    failed: bool = False

    def did(self, line: str) -> None:
        self.lines.append(line)

    def could_not(self, line: str) -> None:
        self.lines.append(line)
        self.failed = True


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _environ(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []


def _pid_from(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 0 else None


def _gone(pid: int, within_s: float) -> bool:
    from ..llm.local import _alive

    deadline = time.monotonic() + within_s
    while _alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _stop(pid: int, what: str, report: StopReport, wait_s: float = PART_WAIT_S) -> None:
    """SIGTERM, a wait, then SIGKILL: the part is gone when this returns, or the report says it is not."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if _gone(pid, wait_s):
        report.did(f"stopped {what} (pid {pid})")
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if _gone(pid, 10.0):
        report.did(f"stopped {what} (pid {pid}) with SIGKILL after {wait_s:.0f} s")
    else:
        report.could_not(f"could not stop {what} (pid {pid}): check it with `ps -p {pid}`")


def _hub_parts(settings: HubSettings) -> list[tuple[str, Callable[[], int | None]]]:
    """The hub's processes, each as (what, a function giving its pid if it is still the hub's)."""
    root = str(settings.root).encode()

    def hub() -> int | None:
        pid = _pid_from(settings.state / "jupyterhub.pid")
        return pid if pid and b"jupyterhub" in _cmdline(pid) else None

    def proxy() -> int | None:
        pid = _pid_from(settings.state / "proxy.pid")
        return pid if pid and b"configurable-http-proxy" in _cmdline(pid) else None

    def service() -> int | None:
        pid = _pid_from(settings.gateway / "service.pid")
        if pid and b"marketlab.hub.service" in _cmdline(pid) and any(
                line.startswith(b"MARKETLAB_HUB_ROOT=") and line.endswith(root) for line in _environ(pid)):
            return pid
        return None

    def model() -> int | None:
        from ..llm.local import _runs_with_token

        try:
            state = json.loads((settings.gateway / "home" / "server.json").read_text())
            pid, token = int(state["pid"]), str(state["token"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return pid if _runs_with_token(pid, token) else None

    return [("JupyterHub", hub), ("the hub's proxy", proxy), ("the gateway service", service),
            ("the built-in model server", model)]


def stop(settings: HubSettings, *, undo_grants: bool = False, remove_accounts: bool = False) -> StopReport:
    """Stop the hub (it stops every person's server), then any part it left; then undo what was asked."""
    if os.geteuid() != 0:
        raise HubError("The hub must be stopped as root: it runs as root and made system accounts and grants.",
                       "Run `sudo .venv/bin/marketlab hub stop` (add --root if the hub is not in the default folder).")
    if not settings.state.is_dir():
        raise HubError(f"There is no hub in {settings.root} (no {settings.state} folder).",
                       "Pass the folder the hub was started with: `marketlab hub stop --root <folder>`.")
    report = StopReport()
    parts = _hub_parts(settings)
    running = False
    for what, find in parts:
        pid = find()
        if pid is None:
            continue
        running = True
        _stop(pid, what, report, HUB_WAIT_S if what == "JupyterHub" else PART_WAIT_S)
    if not running:
        report.did("the hub was not running")
    if undo_grants:
        _undo_grants(settings, report)
    if remove_accounts:
        _remove_accounts(settings, report)
    return report


def _other_running_hubs(settings: HubSettings) -> list[Path]:
    """The folders of the other hubs running on this machine (JupyterHub processes started by `hub start`)."""
    from .spawner import ROOT_VARIABLE

    marker = f"{ROOT_VARIABLE}=".encode()
    roots: set[Path] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or b"jupyterhub" not in _cmdline(int(entry.name)):
            continue
        for line in _environ(int(entry.name)):
            if line.startswith(marker):
                root = Path(line[len(marker):].decode(errors="replace"))
                if root != settings.root:
                    roots.add(root)
    return sorted(roots)


def _undo_grants(settings: HubSettings, report: StopReport) -> None:
    grants = record.read(settings.state)["grants"]
    needed: dict[tuple[str, str], Path] = {}
    for other in _other_running_hubs(settings):  # a grant another running hub also made stays for it
        try:
            for grant in record.read(other / "state")["grants"]:
                needed[(grant["folder"], grant["group"])] = other
        except HubError:
            continue
    for grant in grants:
        if (grant["folder"], grant["group"]) in needed:
            report.did(f"kept {grant['group']}'s pass-through on {grant['folder']}: the running hub in "
                       f"{needed[(grant['folder'], grant['group'])]} needs it too (its own stop takes it back)")
            continue
        why = take_back_grant(grant["folder"], grant["group"])
        if why:
            report.could_not(f"could not take back {grant['group']}'s pass-through on {grant['folder']}: {why}")
        else:
            record.remove(settings.state, "grants", grant)
    folders = sorted({grant["folder"] for grant in grants if (grant["folder"], grant["group"]) not in needed})
    report.did(f"took back the pass-through grants on {', '.join(folders)}" if folders
               else "no pass-through grants to take back")


def _remove_accounts(settings: HubSettings, report: StopReport) -> None:
    from .settings import GATEWAY_ACCOUNT

    made = record.read(settings.state)
    others = _other_running_hubs(settings)
    if others:  # the groups and the gateway's account serve every hub on this machine: keep them for those
        shared = [name for name in made["accounts"] if name == GATEWAY_ACCOUNT] + made["groups"]
        made = {**made, "accounts": [name for name in made["accounts"] if name != GATEWAY_ACCOUNT], "groups": []}
        if shared:
            report.did(f"kept {', '.join(shared)}: the running hub in {others[0]} uses them too; run this "
                       "command again once that hub has stopped")
    for name in made["accounts"]:
        done = subprocess.run(["userdel", name], capture_output=True, text=True)
        if done.returncode in (0, 6):  # 6: no such account (already removed)
            record.remove(settings.state, "accounts", name)
        else:
            report.could_not(f"could not remove the system account {name!r}: {done.stderr.strip()}")
    for name in made["groups"]:
        done = subprocess.run(["groupdel", name], capture_output=True, text=True)
        if done.returncode in (0, 6):
            record.remove(settings.state, "groups", name)
        else:
            report.could_not(f"could not remove the system group {name!r}: {done.stderr.strip()}")
    if made["accounts"]:
        report.did(f"removed the system accounts the hub made ({', '.join(made['accounts'])}); their homes stay in "
                   f"{settings.homes} until you delete them")
    else:
        report.did("no system accounts to remove")
