"""The instructor's pipeline over nbgrader: `marketlab course init/build/release/collect/autograde/feedback/report`.

Nothing is imported here eagerly: the grading kernel starts from `marketlab.grading.sandbox`, and
every import in this file would be paid again by every graded notebook.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CellScore", "ValidationResult", "validate_lab"]


def __getattr__(name: str) -> Any:
    """`from marketlab.course import validate_lab` keeps working, loaded on first use."""
    if name in __all__:
        from . import validate

        return getattr(validate, name)
    raise AttributeError(f"module 'marketlab.course' has no attribute {name!r}")
