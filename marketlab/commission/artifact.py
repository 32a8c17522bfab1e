"""Save the learner's scoring rules as scoring_rules.py: a module that scores any extracted proposals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

RULES_FILE = "scoring_rules.py"
HEADER = ("from marketlab.brief import is_measurable  # noqa: F401\n"
          "from marketlab.commission import FREQUENT, SCHEDULED, QUESTION_IDS, score  # noqa: F401")


def rules_module(rules: Callable[..., Any]) -> str:
    """The text of scoring_rules.py: the rules function and scorecard(extractions), which applies it."""
    from marketlab.artifacts import function_source

    name = getattr(rules, "__name__", "")
    if not name.isidentifier():
        from .errors import CommissionError

        raise CommissionError("The scoring rules must be a function defined with `def`.",
                              "Write them as `def my_rules(a):` and pass my_rules.")
    return (f'"""Scoring rules for vendor proposals, saved from a marketlab notebook."""\n\n'
            f"from __future__ import annotations\n\n{HEADER}\n\n\n{function_source(rules)}\n\n"
            f"def scorecard(extractions):\n"
            f'    """Score extracted proposals with {name}: one row per proposal and question."""\n'
            f"    return score(extractions, {name})\n")


def save_rules(rules: Callable[..., Any], here: str | Path | None = None) -> list[Path]:
    """Write scoring_rules.py next to the notebook (and to the shared folder), then check it runs on its own."""
    from marketlab.artifacts import save_module

    from .reference import load_extractions

    paths = save_module(RULES_FILE, rules_module(rules), here,
                        check=lambda module: module.scorecard(load_extractions()))
    print(f"Saved your scoring rules to {paths[0]} (and a copy in {paths[1].parent}).")
    return paths
