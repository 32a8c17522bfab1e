"""What the grading workers' fork server imports once, so that no worker imports it again.

Each worker is forked from that server (marketlab.course.autograde), so a module loaded there is
loaded in every worker for free; a module each worker imports for itself costs every worker about
a core-second. The coordinator names, in $MARKETLAB_GRADING_PRELOAD (comma-separated), marketlab's
modules that the course's graders import; importing this module in the server loads them. A name
that is not a module, or a module that fails to load, even by SystemExit, is skipped here, so the
server lives on: the worker that needs it imports it itself and reports what went wrong for that
lab only. Without the variable (any process but the server), importing this module does nothing.
"""

from __future__ import annotations

import importlib
import os

VARIABLE = "MARKETLAB_GRADING_PRELOAD"


def load(names: str) -> list[str]:
    """Import each module named (comma-separated); the names that loaded."""
    loaded = []
    for name in filter(None, (part.strip() for part in names.split(","))):
        try:
            importlib.import_module(name)
        except BaseException:  # noqa: BLE001, S112 - SystemExit too: the server must live on; the worker reports it
            continue
        loaded.append(name)
    return loaded


load(os.environ.pop(VARIABLE, ""))
