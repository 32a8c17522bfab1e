"""Instant feedback for learners, one module per lab; hidden graders call the same functions.

    from marketlab.checks import lab01
    lab01.check_build_messages(build_messages, products, brief)   # prints ✅/❌ and a hint
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

from ._report import CheckFailed, CheckResult, finish

__all__ = ["CheckFailed", "CheckResult", "finish", "grader_path", "use_graders"]


def grader_path() -> Path:
    """The instructor's graders folder: $MARKETLAB_GRADERS, else graders/ at the repository root."""
    configured = os.environ.get("MARKETLAB_GRADERS")
    path = Path(configured) if configured else Path(__file__).resolve().parents[2] / "graders"
    if not path.is_dir():
        raise FileNotFoundError(
            f"The graders folder {path} does not exist. Hidden tests run on the instructor's side: "
            "set MARKETLAB_GRADERS to the course's graders folder."
        )
    return path


def use_graders() -> Path:
    """Make `import graders.labNN` work from any notebook folder; returns the graders folder."""
    path = grader_path()
    current = sys.modules.get("graders")
    if current is None or str(path) not in list(getattr(current, "__path__", [])):
        # A namespace-like package pointing at the folder, whatever the folder is called.
        package = types.ModuleType("graders")
        package.__path__ = [str(path)]
        sys.modules["graders"] = package
        for name in [m for m in sys.modules if m.startswith("graders.")]:
            del sys.modules[name]
    return path
