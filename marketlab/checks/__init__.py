"""Instant feedback for learners, one module per lab; hidden graders call the same functions.

    from marketlab.checks import lab01
    lab01.check_build_messages(build_messages, products, brief)   # prints ✅/❌ and a hint
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import paths
from ._report import CheckFailed, CheckResult, finish

__all__ = ["CheckFailed", "CheckResult", "finish", "grader_path"]


def grader_path() -> Path:
    """The instructor's graders folder: $MARKETLAB_GRADERS, else graders/ in the checkout (marketlab.paths)."""
    configured = os.environ.get("MARKETLAB_GRADERS")
    path = Path(configured) if configured else paths.graders()
    if not path.is_dir():
        raise FileNotFoundError(
            f"The graders folder {path} does not exist. Hidden tests run on the instructor's side: "
            "set MARKETLAB_GRADERS to the course's graders folder."
        )
    return path
