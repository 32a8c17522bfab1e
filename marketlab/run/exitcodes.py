"""The exit status of `marketlab run` (for cron and schedulers) and the errors that lead to each.

    0   OK                 every row came back usable and the acceptance criteria (where declared) are met
    1   FAILED             the run did not finish: the workflow, a notebook cell, evaluate.py or the batch
                           stopped it
    2   BAD_INPUT          nothing was sent: the input, a --param, the column mapping or the workflow folder or
                           notebook needs fixing first
    3   ROWS_NOT_USABLE    the run finished, but some rows (or all) did not come back usable: they failed,
                           were skipped by the budget, never answered (an expired batch), left out of a trial
                           run (max_rows), or lost; the output and the report name each by its key
    4   ACCEPTANCE_MISSED  every row came back usable, but the results missed the acceptance criteria
    130 INTERRUPTED        stopped by Ctrl-C; run the same command again to resume

The status is read from one outcome record (marketlab.run.outcome.Outcome), the same one the console
summary and the report show. When several apply, the first in the order 130, 2, 1, 3, 4 wins.
"""

from __future__ import annotations

from enum import IntEnum

from marketlab.errors import AcceptanceMissed, MarketlabError, RunFailedError, RunInputError


class ExitCode(IntEnum):
    """The exit status of one run; the numbers are part of the command's contract."""

    OK = 0
    FAILED = 1
    BAD_INPUT = 2
    ROWS_NOT_USABLE = 3
    ROWS_LOST = 3  # the former name of ROWS_NOT_USABLE
    ACCEPTANCE_MISSED = 4
    INTERRUPTED = 130

    def meaning(self) -> str:
        """What this status tells the person or scheduler reading it."""
        return MEANINGS[self]


MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "every row came back usable and the acceptance criteria (where declared) are met",
    ExitCode.FAILED: "the run did not finish (the workflow, a notebook cell, evaluate.py or the batch stopped it)",
    ExitCode.BAD_INPUT: "nothing was sent: the input, a --param or the column mapping needs fixing first",
    ExitCode.ROWS_NOT_USABLE: "some rows did not come back usable: failed, skipped by the budget, never answered "
                              "or sent, or lost",
    ExitCode.ACCEPTANCE_MISSED: "every row came back usable, but the results missed the acceptance criteria",
    ExitCode.INTERRUPTED: "the run was interrupted; run the same command again to resume",
}


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
