"""On the hub, each visible check's outcome goes to the hub's progress service, so instructors see who is stuck.

Sent: the lab, the check's name, passed or not, how many problems, and a fingerprint of the hint
shown. Never code, answers, prompts or model replies. Off the hub (no MARKETLAB_PROGRESS_URL and
hub token) nothing is sent. Sending never slows or breaks a check: it runs in the background and
any failure is ignored.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import threading
from types import FrameType
from typing import Any

from marketlab.llm.config import HUB_TOKEN_VARIABLE

PROGRESS_VARIABLE = "MARKETLAB_PROGRESS_URL"
_LAB_MODULE = re.compile(r"^marketlab\.checks\.(lab\d\d|capstone)$")
_told = threading.Event()


def notice(url: str) -> str:
    """The line a learner sees once per session, saying what is shared and where to see it."""
    mine = url.rsplit("/attempts", 1)[0] + "/"
    return ("ⓘ On this hub, which check you ran and whether it passed is shared with your instructor "
            f"(never your answers or prompts). See what is recorded about you: {mine}")


def _lab_of_caller() -> str:
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        match = _LAB_MODULE.match(frame.f_globals.get("__name__", ""))
        if match:
            return match.group(1)
        frame = frame.f_back
    return "other"


def attempt(result: Any, lab: str) -> dict[str, Any]:
    """The plain record sent for one check result."""
    return {"lab": lab, "exercise": str(result.name)[:80] or "check", "passed": bool(result.passed),
            "problems": len(result.problems), "hint": hashlib.sha256(result.hint.encode()).hexdigest()[:12]
            if result.hint and not result.passed else ""}


def share(result: Any) -> None:
    """Send one check result in the background when running on the hub; print the notice the first time."""
    url, token = os.environ.get(PROGRESS_VARIABLE), os.environ.get(HUB_TOKEN_VARIABLE)
    if not url or not token:
        return
    if not _told.is_set():
        _told.set()
        print(notice(url))
    record = attempt(result, _lab_of_caller())
    threading.Thread(target=_post, args=(url, token, record), daemon=True).start()


def _post(url: str, token: str, record: dict[str, Any]) -> None:
    import httpx2

    try:
        httpx2.post(url, json=record, headers={"Authorization": f"token {token}"}, timeout=5)
    except Exception:  # the grid is a convenience: a check never fails because the hub is busy
        pass
