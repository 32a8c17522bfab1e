"""The exit status of `marketlab run` (for cron and schedulers) and the errors that lead to each.

    0   OK                 every row came back and the run met its acceptance criteria (or has none)
    1   FAILED             the run did not finish: the workflow, notebook or evaluation stopped, the batch
                           failed, or not one row came back usable
    2   BAD_INPUT          nothing was run: a missing, empty or unreadable input, a bad --param, a broken
                           workflow folder or notebook
    3   ROWS_LOST          the output has fewer rows than the input
    4   ACCEPTANCE_MISSED  the run finished but missed its own acceptance criteria (evaluate.py's ACCEPTANCE)
    130 INTERRUPTED        stopped by Ctrl-C; run the same command again to resume
"""

from __future__ import annotations

from enum import IntEnum

from marketlab.errors import MarketlabError


class ExitCode(IntEnum):
    """The exit status of one run; the numbers are part of the command's contract."""

    OK = 0
    FAILED = 1
    BAD_INPUT = 2
    ROWS_LOST = 3
    ACCEPTANCE_MISSED = 4
    INTERRUPTED = 130

    def meaning(self) -> str:
        """What this status tells the person or scheduler reading it."""
        return MEANINGS[self]


MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "every row came back and the run met its acceptance criteria (or has none)",
    ExitCode.FAILED: "the run did not finish, or not one row came back usable",
    ExitCode.BAD_INPUT: "nothing was run: the input, a --param or the workflow needs fixing first",
    ExitCode.ROWS_LOST: "the output has fewer rows than the input",
    ExitCode.ACCEPTANCE_MISSED: "the run finished but missed its own acceptance criteria",
    ExitCode.INTERRUPTED: "the run was interrupted; run the same command again to resume",
}


class RunInputError(MarketlabError, ValueError):
    """The input file, a --param, the workflow folder or the notebook cannot be run (exit status 2)."""

    headline = "❌ marketlab run cannot start."


class RunFailedError(MarketlabError, RuntimeError):
    """The run started but could not finish (exit status 1)."""

    headline = "❌ The run did not finish."


class AcceptanceMissed(MarketlabError):
    """Raised by a notebook's last cell when its results miss the acceptance criteria (exit status 4)."""

    headline = "❌ The run missed its acceptance criteria."


def exit_code_for(error: BaseException) -> ExitCode:
    """The exit status an error ends a run with."""
    if isinstance(error, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(error, AcceptanceMissed):
        return ExitCode.ACCEPTANCE_MISSED
    if isinstance(error, RunFailedError):
        return ExitCode.FAILED
    if isinstance(error, MarketlabError):
        return ExitCode.BAD_INPUT
    return ExitCode.FAILED


__all__ = ["AcceptanceMissed", "ExitCode", "MEANINGS", "RunFailedError", "RunInputError", "exit_code_for"]
