"""Check results and how they are printed: one ✅/❌ line, then the problems and a hint."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from marketlab.errors import MarketlabError

MAX_PROBLEMS_SHOWN = 5


class CheckFailed(MarketlabError, AssertionError):
    """A check did not pass; in a notebook it shows as a short message, not a stack trace."""

    def __init__(self, result: CheckResult) -> None:
        self.result = result
        super().__init__(result.text(), result.hint)

    def message(self) -> str:
        """The check's own text already carries the hint."""
        return self.problem

    def __reduce__(self) -> tuple[type, tuple[CheckResult]]:  # rebuilt from its result, not (problem, fix)
        return (type(self), (self.result,))

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing the traceback: marketers see the message only,
        # and only once if the check already printed it.
        if getattr(self.result, "_shown", False):
            return ["This check did not pass yet: see the lines above."]
        return ["This check did not pass yet.", *self.result.text().splitlines()]


@dataclass
class CheckResult:
    """The outcome of one check: what was checked, whether it passed, what went wrong, a hint."""

    name: str
    what: str
    passed: bool = True
    problems: list[str] = field(default_factory=list)
    hint: str = ""

    def fail(self, problem: str) -> None:
        """Record one problem; the check then fails."""
        self.passed = False
        self.problems.append(problem)

    def text(self) -> str:
        """The printable result: a ✅ or ❌ line, then problems and the hint on failure."""
        if self.passed:
            return f"✅ {self.what}"
        lines = [f"❌ Not yet: {self.what}"]
        shown = self.problems[:MAX_PROBLEMS_SHOWN]
        lines += [f"   - {problem}" for problem in shown]
        if len(self.problems) > len(shown):
            lines.append(f"   - ... and {len(self.problems) - len(shown)} more")
        if self.hint:
            lines.append(f"   Hint: {self.hint}")
        return "\n".join(lines)

    def show(self) -> None:
        """Print the result (and, on the hub, share pass or fail with the instructor's progress grid)."""
        self._shown = True
        from .sharing import share

        share(self)
        print(self.text())

    def _ipython_display_(self) -> None:
        # A check prints its line when it runs; showing the returned result again would repeat it.
        if not getattr(self, "_shown", False):
            self.show()

    def assert_passed(self) -> None:
        """Raise CheckFailed when the check did not pass."""
        if not self.passed:
            raise CheckFailed(self)

    def __bool__(self) -> bool:
        return self.passed


def finish(result: CheckResult, *, strict: bool = True, quiet: bool = False) -> CheckResult:
    """Print the result (unless quiet) and, when strict, raise CheckFailed if it failed."""
    if not quiet:
        result.show()
    if strict:
        result.assert_passed()
    return result


def saved_file_missing(result: CheckResult, folder: Path, filename: str) -> bool:
    """Fail `result` when the lab's saved file is not next to the notebook; True when it is missing."""
    if (folder / filename).is_file():
        return False
    result.fail(f"there is no {filename} next to the notebook")
    result.hint = f"Run the save cell above: it writes {filename} next to this notebook."
    return True


def describe_error(err: BaseException) -> str:
    """One line naming an exception raised by learner code."""
    from ..grading.wire import RemoteError

    name = err.kind if isinstance(err, RemoteError) else type(err).__name__
    text = err.text if isinstance(err, RemoteError) else str(err)
    message = text.strip().splitlines()[0][:200] if text.strip() else ""
    return f"{name}: {message!r}" if message else name
