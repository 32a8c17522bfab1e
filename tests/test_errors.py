"""Every error marketlab raises for a person is a MarketlabError (a problem and a fix), found from marketlab.errors.

The walk imports every module of marketlab and looks at each exception class defined there; a new
`class Oops(Exception)` anywhere fails here until it derives from MarketlabError and is importable
from marketlab.errors (defined there, or listed in its _DEFINED_ELSEWHERE).
"""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
from pathlib import Path

import pytest

import marketlab
import marketlab.errors as errors
from marketlab.brief import Brief, lint
from marketlab.errors import MarketlabError
from marketlab.hub.settings import Allowance
from marketlab.hub.usage import Allowances, Ledger, Refused

# Exceptions used for control flow inside one module: raised and caught there, never shown to anyone.
INTERNAL = {
    # A row's request failed for good: caught in the same runner and written as the row's error_kind.
    "marketlab.workflow.runner._CallError",
    # A repair request did not fit the budget: caught in the same runner, the row becomes skipped_budget.
    "marketlab.workflow.runner._NoBudget",
    # A llama.cpp call failed inside the model server's engine: it fails the one request that met it (a server
    # error with these words) or the engine's start, which `marketlab serve` and the self-test report.
    "marketlab.llm.llama_adapter.LlamaError",
    # A response format llama.cpp cannot turn into a grammar: caught in the engine, the request gets a 400.
    "marketlab.llm.llama_adapter.GrammarError",
}
# Reachable by an operator but not yet a MarketlabError; each entry names why it is still here.
NOT_YET: set[str] = set()  # classes still to become MarketlabError(problem, fix): none


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(marketlab.__path__, "marketlab."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__:
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


@pytest.fixture(scope="module")
def exception_classes() -> dict[str, type[BaseException]]:
    return _exception_classes()


@pytest.mark.slow
def test_every_exception_class_of_marketlab_is_a_marketlab_error(
        exception_classes: dict[str, type[BaseException]]) -> None:
    assert len(exception_classes) > 20, "the walk found marketlab's errors"
    outside = sorted(name for name, cls in exception_classes.items()
                     if not issubclass(cls, MarketlabError) and name not in INTERNAL | NOT_YET)
    assert not outside, f"derive these from MarketlabError (problem, fix): {outside}"
    assert INTERNAL | NOT_YET <= set(exception_classes), "an allowlisted class that is gone leaves the list"


@pytest.mark.slow
def test_every_error_class_is_importable_from_marketlab_errors(
        exception_classes: dict[str, type[BaseException]]) -> None:
    missing = sorted(name for name, cls in exception_classes.items()
                     if name not in INTERNAL and getattr(errors, cls.__name__, None) is not cls)
    assert not missing, f"import these in marketlab.errors (or list them in _DEFINED_ELSEWHERE): {missing}"


def test_every_error_listed_elsewhere_is_where_the_list_says() -> None:
    for name, home in errors._DEFINED_ELSEWHERE.items():
        cls = getattr(importlib.import_module(home), name)
        assert inspect.isclass(cls) and issubclass(cls, Exception), f"{home}.{name}"
        assert getattr(errors, name) is cls
        assert cls.__module__ == home, f"{name} is defined in {cls.__module__}, not {home}: correct the list"
    assert "Refused" in dir(errors) and "BriefError" in dir(errors)
    with pytest.raises(AttributeError):
        errors.NoSuchError  # noqa: B018 - the lookup itself is the test


def test_the_old_import_paths_give_the_same_classes() -> None:
    from marketlab import artifacts
    from marketlab.brief.errors import BriefError
    from marketlab.commission.errors import CommissionError
    from marketlab.evaluate.errors import EvaluateInputError
    from marketlab.llm.errors import LLMSetupError, ModelStoppedDuringCallError, ModelStoppedError, UsageError
    from marketlab.monitor.errors import MonitorError
    from marketlab.run.exitcodes import AcceptanceMissed, RunFailedError, RunInputError
    from marketlab.workflow.errors import WorkflowInputError, WorkflowSettingsError

    assert (BriefError, CommissionError, EvaluateInputError, MonitorError) == (
        errors.BriefError, errors.CommissionError, errors.EvaluateInputError, errors.MonitorError)
    assert (LLMSetupError, ModelStoppedError, UsageError) == (errors.LLMSetupError, errors.ModelStoppedError,
                                                              errors.UsageError)
    assert (WorkflowInputError, WorkflowSettingsError) == (errors.WorkflowInputError, errors.WorkflowSettingsError)
    assert (RunInputError, RunFailedError, AcceptanceMissed) == (errors.RunInputError, errors.RunFailedError,
                                                                 errors.AcceptanceMissed)
    assert (artifacts.ArtifactError, artifacts.ArtifactNotFoundError) == (errors.ArtifactError,
                                                                          errors.ArtifactNotFoundError)
    assert errors.ModelStoppedDuringCallError is ModelStoppedDuringCallError


def test_marketlab_errors_imports_only_the_standard_library() -> None:
    source = Path(errors.__file__).read_text(encoding="utf-8")
    top = source.split("if TYPE_CHECKING:")[0]
    imported = [line.split()[1] for line in top.splitlines() if line.startswith(("import ", "from "))]
    assert imported == ["__future__", "importlib", "typing"], "a leaf every module can import without a cycle"


def test_an_unknown_lint_rule_is_a_marketlab_error_and_still_a_key_error() -> None:
    with pytest.raises(errors.LintRuleError) as raised:
        lint(Brief(), ["no-such-rule", "budget-set"])
    assert isinstance(raised.value, KeyError) and isinstance(raised.value, MarketlabError)
    assert raised.value.problem == "'no-such-rule' is an unknown lint rule."
    assert "objective-stated" in raised.value.fix
    with pytest.raises(KeyError, match="was not run for this report"):
        lint(Brief(), ["budget-set"]).result("objective-stated")
    with pytest.raises(KeyError, match="no lint rule named 'nope'"):
        lint(Brief()).result("nope")


def test_a_record_that_is_not_a_row_is_a_marketlab_error_and_still_a_type_error() -> None:
    brief = Brief()
    for bad_record, examples in [("Moraine 45 Alpine Pack", None), ({"name": "Pack"}, ["not a pair"])]:
        with pytest.raises(TypeError) as raised:
            brief.to_messages(bad_record, examples=examples)
        assert isinstance(raised.value, errors.RecordError) and raised.value.fix
    assert "RecordError" not in str(raised.value), "the learner sees the problem and the fix, not a class name"


def test_a_refusal_of_the_hub_is_a_marketlab_error_with_the_same_one_line_text(tmp_path: Path) -> None:
    allowances = Allowances(Allowance(requests_per_minute=1), Ledger(tmp_path / "usage.sqlite"))
    allowances.admit("bea", 10, 1)
    with pytest.raises(MarketlabError) as raised:
        allowances.admit("bea", 10, 1)
    refusal = raised.value
    assert isinstance(refusal, Refused) and refusal.kind == "rate_limit"
    wait = refusal.retry_after
    assert refusal.message == (f"You sent 1 requests in the last minute, the most this hub allows. "
                               f"Wait {wait} seconds and run the cell again."), "the gateway's 429 text, unchanged"
    assert refusal.problem.startswith("You sent 1 requests") and refusal.fix.startswith(f"Wait {wait} seconds")
    assert str(refusal) == refusal.message
    copy = pickle.loads(pickle.dumps(refusal))
    assert (copy.kind, copy.message, copy.retry_after) == (refusal.kind, refusal.message, wait)
