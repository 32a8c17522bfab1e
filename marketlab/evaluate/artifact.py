"""Save an evaluator as one importable file, evaluate.py, with evaluate(outputs_df, products_df) -> DataFrame.

The file holds the checks (as the calls that build them), which defect each check catches, the
acceptance criteria and the learner's own functions (agreement_and_kappa, verdict, and any
function a make_check check wraps). It imports only marketlab and pandas, so it runs anywhere:
another notebook, a scheduled job, the grader. Writing, importing it back and loading it is
marketlab.artifacts.ModuleFile, shared with Labs 2 and 4.
"""

from __future__ import annotations

import pprint
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from marketlab import artifacts

from . import checks as built_in
from .compare import Acceptance
from .facts import Faithfulness
from .vocabulary import COURSE_PACK, PACKS, VocabularyError, load_vocabulary

EVALUATE_FILE = "evaluate.py"
FILE = artifacts.ModuleFile(EVALUATE_FILE, "evaluate", "evaluator", "Lab 3's save cell")

TEMPLATE = '''"""Checks for product copy: an evaluator saved from marketlab Lab 3.

    import evaluate
    table = evaluate.evaluate(outputs_df, products_df)   # one row per text, a column per check, a reason
    table[~table["passed"]]                             # the texts a person should read first

outputs_df needs the columns sku and text (or description, as a Lab 2 workflow writes it), and
channel when the copy is not for the web. Edit the notebook and save again rather than editing
this file by hand.
"""

from __future__ import annotations

from typing import Any  # noqa: F401

import pandas as pd
from sklearn.metrics import cohen_kappa_score  # noqa: F401

from marketlab.evaluate import *  # noqa: F401,F403
from marketlab.evaluate import Acceptance, compare, make_check, run_checks  # noqa: F401

{functions}

CHECKS = [
{checks}
]

DEFECT_CHECKS = {defect_checks!r}

ACCEPTANCE = {acceptance}

TEXT = {text!r}  # the column the checks read (None: text, or description as Lab 2 writes it)
FACTS = {facts!r}  # False: the input rows are not product facts, so no check looks facts up


def evaluate(outputs_df: pd.DataFrame, products_df: pd.DataFrame) -> pd.DataFrame:
    """Every check on every text: one row per text, one column per check, `passed` and `reason`."""
    text = TEXT or ("text" if "text" in outputs_df.columns or "description" not in outputs_df.columns
                    else "description")
    return run_checks(outputs_df, products_df if FACTS else None, CHECKS, text=text)
'''


def check_source(check: Any) -> str:
    """The Python call that rebuilds a check (`length()`, `repetition(min_words=4)`, `make_check(...)`)."""
    source = None
    if isinstance(check, built_in.FunctionCheck):
        source = (f"make_check({check.name!r}, {getattr(check.fn, '__name__', '?')}, defect={check.defect!r}, "
                  f"describe={check.describe!r})")
    elif isinstance(check, built_in.RepetitionCheck):
        source = f"repetition(min_words={check.min_words!r})"
    elif isinstance(check, built_in.BannedWordsCheck):
        source = "banned_words()" if check == built_in.banned_words() else f"banned_words({list(check.words)!r})"
    elif isinstance(check, Faithfulness):
        source = f"faithfulness({vocabulary_source(check.packs)})"
    else:
        for name in ("length", "required_facts", "hype", "disclaimers", "valid_json"):
            if check == getattr(built_in, name)():
                source = f"{name}()"
                break
    if source is None:
        raise artifacts.ArtifactError(f"The check {getattr(check, 'name', check)!r} cannot be saved to a file.",
                                      "Build checks with marketlab's check functions (length(), faithfulness(), "
                                      "...) as they are, or write your own with make_check(name, function).")
    return source


def vocabulary_source(packs: Sequence[Any]) -> str:
    """The vocabulary= argument that rebuilds these packs: nothing for the course pack, a shipped pack by name, and
    any other pack written out in full, so evaluate.py carries it wherever it goes (no path to a file left behind)."""
    def one(pack: Any) -> str:
        try:
            shipped = (PACKS / f"{pack.name}.yaml").is_file() and load_vocabulary(pack.name) == pack
        except VocabularyError:
            shipped = False
        if shipped:
            return repr(pack.name)
        data = pprint.pformat(pack.model_dump(), width=100, sort_dicts=False).replace("\n", "\n        ")
        return f"VocabularyPack.model_validate(\n        {data})"

    if not packs:
        return "vocabulary=None"
    written = [one(pack) for pack in packs]
    if written == [repr(COURSE_PACK)]:
        return ""
    return f"vocabulary={written[0]}" if len(written) == 1 else f"vocabulary=[{', '.join(written)}]"


def evaluator_source(checks: Sequence[Any], defect_checks: Mapping[str, str], acceptance: Any,
                     *functions: Callable[..., Any], text: str | None = None, facts: bool = True) -> str:
    """The text of evaluate.py for these checks, mapping, acceptance criteria and functions.

    text: the output column the checks read; facts=False when the input rows are not product facts
    (reviews, leads), so every check gets no product row.
    """
    if not checks:
        raise artifacts.ArtifactError("CHECKS is empty.", "List at least one check, e.g. CHECKS = [length()].")
    if not isinstance(acceptance, Acceptance):
        raise artifacts.ArtifactError(f"ACCEPTANCE is a {type(acceptance).__name__}, not an Acceptance.",
                                      "Write ACCEPTANCE = Acceptance(min_pass_rate=..., must_pass=[...]).")
    names = [getattr(c, "name", None) for c in checks]
    if len(set(names)) != len(names):
        raise artifacts.ArtifactError("Two checks in CHECKS have the same name.", "Keep one check of each kind.")
    mapping = {str(k): str(v) for k, v in dict(defect_checks).items()}
    unknown = sorted(set(mapping.values()) - set(names))
    if unknown:
        raise artifacts.ArtifactError(f"DEFECT_CHECKS names check(s) that are not in CHECKS: {', '.join(unknown)}.",
                                      "Add the check to CHECKS, or correct the name in DEFECT_CHECKS.")
    wrapped = [c.fn for c in checks if callable(getattr(c, "fn", None))]
    sources = []
    for fn in [*wrapped, *functions]:
        name = getattr(fn, "__name__", "")
        if not name.isidentifier() or name == "<lambda>":
            raise artifacts.ArtifactError("A function to save is a lambda, which cannot be saved to a file.",
                                          "Define it with `def name(...):`.")
        sources.append(artifacts.function_source(fn).rstrip())
    return TEMPLATE.format(functions="\n\n\n".join(sources),
                           checks="\n".join(f"    {check_source(c)}," for c in checks),
                           defect_checks=mapping, acceptance=repr(acceptance), text=text, facts=bool(facts))


def save_evaluator(checks: Sequence[Any], defect_checks: Mapping[str, str], acceptance: Any,
                   *functions: Callable[..., Any], here: str | Path | None = None) -> list[Path]:
    """Write evaluate.py next to the notebook (and to the shared folder) and import it back to check it."""
    return FILE.save(evaluator_source(checks, defect_checks, acceptance, *functions), here)


def load_evaluator(path: str | Path | None = None) -> ModuleType:
    """Import a saved evaluate.py (default: the one next to the notebook) as a module."""
    return FILE.load(path)


__all__ = ["check_source", "evaluator_source", "load_evaluator", "save_evaluator", "vocabulary_source"]
