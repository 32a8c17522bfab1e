"""The one error base of marketlab: every error says what is wrong (`problem`) and how to fix it (`fix`).

    from marketlab.errors import MarketlabError

    class DataError(MarketlabError, ValueError):
        '''A data file is missing or malformed.'''

    raise DataError("products.csv has no column 'sku'.", "Add the column, or map yours with columns={...}.")

In a notebook IPython shows the problem and the fix instead of a stack trace: a marketer never
has to read a traceback to move on. Subclasses may also inherit a builtin (ValueError,
RuntimeError...) so that existing `except ValueError` code keeps working.
"""

from __future__ import annotations


class MarketlabError(Exception):
    """Something the user can fix: `problem` says what is wrong, `fix` what to do about it."""

    headline = "❌ This did not work."

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = str(problem)
        self.fix = str(fix)
        super().__init__(self.message())

    def message(self) -> str:
        """The problem and, when there is one, the fix, as printed."""
        return f"{self.problem}\nHow to fix: {self.fix}" if self.fix else self.problem

    def __str__(self) -> str:
        return self.message()

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Errors cross process boundaries (process pools, grading workers): keep both parts.
        return (type(self), (self.problem, self.fix))

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing the stack trace.
        return [self.headline, *self.message().splitlines()]
