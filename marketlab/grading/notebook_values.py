"""What a grader reads from a learner's notebook: one plain value, judged by its check, or a result
that says plainly why it could not be read. Shared by the graders of every lab."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marketlab.checks._report import CheckResult

from .wire import RemoteError


def read_value(sub: Any, name: str) -> Any:
    """The notebook variable `name` as plain data, or the RemoteError saying why it could not be read."""
    try:
        return sub.describe(name, "value")
    except RemoteError as err:
        return err


def unreadable(name: str, what: str, err: Any) -> CheckResult:
    """A failed result for an answer the grader could not read from the notebook."""
    result = CheckResult(name, what)
    result.fail(f"it could not be read from the notebook: {err}")
    result.hint = "Run the notebook from the top, so every exercise cell has run."
    return result


def grade_value(sub: Any, name: str, check: Callable[..., CheckResult], label: str, what: str,
                *args: Any) -> CheckResult:
    """Judge one notebook value with its check (extra args after the value), or say it could not be read."""
    value = read_value(sub, name)
    if isinstance(value, RemoteError):
        return unreadable(label, what, value)
    return check(value, *args, strict=False, quiet=True)
