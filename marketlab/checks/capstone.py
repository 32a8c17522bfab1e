"""Checks for the capstone: the packaged workflow folder, run the way the learner's team will run it.

Every check reads the package folder (brief.yaml, workflow.py, evaluate.py, monitor.py, README.md).
In the notebook it is the learner's own folder on course rows the notebook never used; in grading
it is the folder the submission made, run in the grading sandbox on a holdout table from another
company. The model is the scripted endpoint, on the checking side of a socket: it injects faults and
counts every token it serves, so what the workflow spent is observed, not reported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..grading import wire
from ..grading.harness import Harness, LocalHarness, ModuleProcess
from . import extract
from ._report import CheckResult, describe_error, finish

PACKAGE_DIR = "my-workflow"  # the folder the capstone notebook packages into, next to the notebook
FILES = ("brief.yaml", "workflow.py", "evaluate.py", "monitor.py", "README.md")
# The course tables a capstone workflow may run on: name -> the column that identifies a row.
TASK_KEYS = {"products": "sku", "reviews": "review_id", "leads": "lead_id"}
UNSEEN_ROWS = 12      # rows of the run under faults
BUDGET_ROWS = 6       # rows of the run under a tight budget
# Exit statuses of a run that completed (marketlab.run.exitcodes): all usable (0), some rows not usable (3: one
# row fails on purpose here, and a budget skips rows), acceptance computed and missed (4).
DONE = (0, 3, 4)
PROBE_TIMEOUT_S = 180.0


def task_key(task: Any) -> str:
    """The key column of a capstone task; a MarketlabError naming the choices for anything else."""
    from marketlab.errors import MarketlabError

    if not isinstance(task, str) or task not in TASK_KEYS:
        raise MarketlabError(f"TASK is {task!r}.", f"Choose one of {', '.join(repr(t) for t in TASK_KEYS)}.")
    return TASK_KEYS[task]


def unseen_rows(task: str, directory: str | Path | None = None, rows: int = UNSEEN_ROWS) -> pd.DataFrame:
    """Rows of the task's table the capstone notebook never runs on: the last `rows` of it."""
    from marketlab import data

    task_key(task)
    return data.load(task, directory=directory).tail(rows).reset_index(drop=True)


def _read(folder: Path, name: str) -> str | None:
    from marketlab.course.intake import read_text

    return read_text(folder, name)


def _folder_brief(folder: Path) -> Any:
    """The folder's brief.yaml as a Brief (raises what Brief.from_yaml raises for a broken one)."""
    from marketlab.brief import Brief

    return Brief.from_yaml(_read(folder, "brief.yaml") or "", origin="brief.yaml")


def _missing_files(result: CheckResult, folder: Path, names: Sequence[str]) -> bool:
    missing = [name for name in names if _read(folder, name) is None]
    if missing:
        result.fail(f"the folder {folder.name}/ has no {', '.join(missing)}")
        result.hint = "Run the packaging cell: capstone.package(...) writes every file of the folder."
    return bool(missing)


# -- 1. the brief -----------------------------------------------------------------------------

def check_brief(source: Any, *, strict: bool = True, quiet: bool = False) -> CheckResult:
    """The brief (a Brief, or the package folder's brief.yaml) passes every rule of Lab 1's linter."""
    from marketlab.brief import Brief, lint

    result = CheckResult("brief", "your brief is an engineering spec: every rule of the Lab 1 linter passes")
    if isinstance(source, Brief):
        brief = source
    else:
        folder = Path(source)
        if _missing_files(result, folder, ["brief.yaml"]):
            return finish(result, strict=strict, quiet=quiet)
        try:
            brief = _folder_brief(folder)
        except Exception as err:  # noqa: BLE001 - a learner's YAML can be wrong in any way
            result.fail(f"brief.yaml cannot be read as a brief: {describe_error(err)}")
            result.hint = "Fix the YAML in the brief cell (run it: it says which line is wrong), then package again."
            return finish(result, strict=strict, quiet=quiet)
    report = lint(brief)
    for failed in report.failed:
        result.fail(f"{failed.rule.title}: {failed.detail}")
    if report.failed:
        result.hint = f"The first rule to fix: {report.failed[0].rule.fix}"
    return finish(result, strict=strict, quiet=quiet)


# -- 2. the package runs on a table it has never seen ----------------------------------------------

def _run(served: ModuleProcess, harness: Harness, folder: Path, table: pd.DataFrame, fail_value: str,
         params: dict[str, Any], rules: Any, faults: bool = True) -> tuple[dict[str, Any] | None, int, str]:
    """One `marketlab run` of the folder against a fresh scripted endpoint: (outcome, tokens served, error).

    The endpoint is Lab 2's: faults first, then replies that meet the schema and the workflow's own
    word limits, and malformed JSON for every request that names `fail_value` (faults=False: none).
    """
    from ..grading.harness import serve
    from .lab02 import faulty_endpoint

    endpoint = faulty_endpoint(fail_value, rules, faults)
    with serve(endpoint, harness, timeout=1.0) as spec:
        try:
            outcome = served.request({"op": "run", "folder": harness.inside(folder), "table": table,
                                      "client": spec, "params": params}, timeout=PROBE_TIMEOUT_S)
        except (wire.RemoteError, wire.WireError) as err:
            return None, sum(endpoint.tokens_served), describe_error(err)
    if isinstance(outcome, dict):
        # The probe's report comes from the learner's process; what the endpoint served is the checker's own.
        outcome["usable_replies_served"] = endpoint.usable_replies
    return (outcome if isinstance(outcome, dict) else None), sum(endpoint.tokens_served), ""


def _unbacked_rows(label: str, outcome: dict[str, Any]) -> list[str]:
    """Rows reported usable beyond the usable replies the checking side's endpoint itself served."""
    out = outcome.get("output")
    if not isinstance(out, pd.DataFrame) or "status" not in out.columns:
        return []
    usable = int(out["status"].isin(["ok", "repaired"]).sum())
    served = int(outcome.get("usable_replies_served", 0))
    if usable > served:
        return [f"{label}: {usable} rows are reported usable, but the model gave only {served} usable replies"]
    return []


def _lost_rows(label: str, outcome: dict[str, Any], table: pd.DataFrame, key: str) -> list[str]:
    """Problems with the rows of the output file: every input key exactly once, each row with a status."""
    from marketlab.workflow import STATUSES

    out = outcome.get("output")
    if not isinstance(out, pd.DataFrame):
        return [f"{label}: no output file was written"]
    if key not in out.columns:
        return [f"{label}: the output has no {key} column, so results cannot be joined back to the table"]
    wanted = table[key].astype(str).tolist()
    got = out[key].astype(str).tolist()
    problems = []
    lost = [k for k in wanted if k not in set(got)]
    if lost:
        problems.append(f"{label}: {len(lost)} of {len(wanted)} rows lost (first {lost[0]})")
    extra = sorted(set(got) - set(wanted))
    if extra or len(got) != len(set(got)):
        problems.append(f"{label}: the output has rows that are not in the input, or a row twice")
    if "status" not in out.columns:
        problems.append(f"{label}: the output has no status column: nobody can tell a failed row from a good one")
    else:
        odd = sorted({str(s) for s in out["status"]} - set(STATUSES))
        if odd:
            problems.append(f"{label}: status values that are not the runner's: {odd[:3]}")
    return problems


def _judge_full(outcome: dict[str, Any] | None, error: str, served: int, table: pd.DataFrame, key: str,
                result: CheckResult) -> None:
    label = f"run on {len(table)} unseen rows under faults"
    if outcome is None:
        result.fail(f"{label}: it stopped with {error or 'no answer'}")
        return
    code = outcome.get("exit")
    if code not in DONE:
        said = "; ".join(str(p) for p in (outcome.get("problems") or [])[:2])
        result.fail(f"{label}: marketlab run ended with exit status {code}" + (f" ({said})" if said else ""))
    for problem in _lost_rows(label, outcome, table, key) + _unbacked_rows(label, outcome):
        result.fail(problem)
    if not outcome.get("acceptance"):
        result.fail(f"{label}: no acceptance criteria were computed (evaluate.py's ACCEPTANCE)")
    declared = outcome.get("declared") or {}
    tokens = declared.get("tokens")
    if tokens is None and declared.get("cost_usd") is None:
        result.fail("the workflow has no budget: a run on a big table could spend without limit")
    elif tokens is not None and served > int(tokens):
        result.fail(f"{label}: the model served {served} tokens; the workflow's own budget is {tokens}")


def _judge_budget(outcome: dict[str, Any] | None, error: str, served: int, budget: int, table: pd.DataFrame,
                  key: str, result: CheckResult) -> None:
    label = f"run on {len(table)} rows with a budget of {budget} tokens"
    if outcome is None:
        result.fail(f"{label}: it stopped with {error or 'no answer'}")
        return
    out = outcome.get("output")
    if outcome.get("exit") not in DONE:
        result.fail(f"{label}: marketlab run ended with exit status {outcome.get('exit')}")
    if served > budget:
        result.fail(f"{label}: the model served {served} tokens, over the budget")
    for problem in _lost_rows(label, outcome, table, key) + _unbacked_rows(label, outcome):
        result.fail(problem)
    if isinstance(out, pd.DataFrame) and "status" in out.columns and not (out["status"] == "skipped_budget").any():
        result.fail(f"{label}: no row says skipped_budget, yet the budget could not pay for every row")


def check_package(folder: str | Path, table: pd.DataFrame, key: str, *, harness: Harness | None = None,
                  strict: bool = True, quiet: bool = False) -> CheckResult:
    """`marketlab run` on the folder, in a fresh Python, on rows it has never seen, under faults and a budget."""
    result = CheckResult("package", f"marketlab run on your folder, on {len(table)} rows it has never seen, under "
                                    "faults: it completes, loses no row, keeps its budget, computes its acceptance")
    folder = Path(folder)
    harness = harness or LocalHarness()
    if _missing_files(result, folder, ["workflow.py", "evaluate.py"]):
        return finish(result, strict=strict, quiet=quiet)
    fail_value = str(table[key].iloc[1]) if len(table) > 1 else ""
    few = table.head(BUDGET_ROWS)
    with harness.served(folder, ["-m", "marketlab.grading.run_probe"]) as served:
        try:  # the saved rules only shape the scripted replies; nothing is judged on them
            rules = extract.rules_from_data(served.request({"op": "rules", "folder": harness.inside(folder)}) or {})
        except (wire.RemoteError, wire.WireError):
            rules = None
        first, spent, first_error = _run(served, harness, folder, table, fail_value, {}, rules)
        _judge_full(first, first_error, spent, table, key, result)
        # Half what the first run spent on as many rows: the budget cannot pay for all of them. No faults
        # this time, so what the budget buys is replies.
        budget = max(1, spent * len(few) // (2 * max(1, len(table))))
        second, spent_second, second_error = _run(served, harness, folder, few, "", {"token_budget": budget}, rules,
                                                  faults=False)
        _judge_budget(second, second_error, spent_second, budget, few, key, result)
    result.hint = ("Package again with capstone.package(...) and keep run() as it is saved: it returns every row, "
                   "failed ones marked. Give SETTINGS a token_budget, and ACCEPTANCE at least one criterion.")
    return finish(result, strict=strict, quiet=quiet)


# -- 3. monitoring ------------------------------------------------------------------------------

def check_monitoring(folder: str | Path, changed: pd.DataFrame, stable: pd.DataFrame, start_week: int, *,
                     harness: Harness | None = None, strict: bool = True, quiet: bool = False) -> CheckResult:
    """monitor.py, in a fresh Python, alerts soon after the checks start failing and never on stable runs."""
    from .lab04 import workflow_alert_problems

    result = CheckResult("monitoring", "monitor.py alerts within 3 weeks when the checks start failing, stays quiet "
                                       "otherwise, and every alert names an owner and an action")
    folder = Path(folder)
    harness = harness or LocalHarness()
    if _missing_files(result, folder, ["monitor.py"]):
        return finish(result, strict=strict, quiet=quiet)
    with harness.module(folder, "monitor.py") as served:
        try:
            alerts = [served.request({"op": "call", "name": "monitor", "args": [t]}, timeout=60) for t in (changed,
                                                                                                        stable)]
        except (wire.RemoteError, wire.WireError) as err:
            result.fail(f"monitor.py could not run on its own: {describe_error(err)}")
            result.hint = "Package again; keep ALERTS to AlertRule(...) with marketlab's triggers."
            return finish(result, strict=strict, quiet=quiet)
    for problem in workflow_alert_problems(*alerts, start_week):
        result.fail(problem)
    result.hint = ("Watch 'pass_rate' with Trigger.beyond(sigmas=2, weeks=2, out_of=3); name the owner from your "
                   "brief, and an action: 'review', 'rewrite the prompt' or 'switch off'.")
    return finish(result, strict=strict, quiet=quiet)


# -- 4. the README for the team ---------------------------------------------------------------

MIN_README_WORDS = 120
HANDOVER_FILE = Path(__file__).resolve().parent.parent / "reference" / "handover.yaml"
GENERATED = "<!-- written by capstone.package: files, command, acceptance, alert owners -->"


def learner_part(readme: str) -> str:
    """The part of README.md the learner wrote (package() adds the rest below a marker line)."""
    return readme.split(GENERATED, 1)[0]


def _forms(phrase: str) -> str:
    """A regex for a word or phrase with any ending on its first word: read, reads, reading; looks over."""
    first, *rest = phrase.lower().split()
    if first.endswith("e") and len(first) > 3:
        head = re.escape(first[:-1]) + r"(?:e|es|ed|ing)"
    else:
        head = re.escape(first) + rf"(?:s|es|ed|ing|{re.escape(first[-1])}ed|{re.escape(first[-1])}ing)?"
    return r"(?<![\w-])" + r"\s+".join([head, *(re.escape(w) for w in rest)]) + r"(?![\w-])"


def _any(phrases: Sequence[str]) -> re.Pattern[str]:
    return re.compile("|".join(_forms(str(p)) for p in phrases if str(p).strip()), re.IGNORECASE)


def load_handover(path: str | Path | None = None) -> dict[str, Any]:
    """The words the README check reads a hand-over by (marketlab/reference/handover.yaml by default)."""
    import yaml

    return yaml.safe_load(Path(path or HANDOVER_FILE).read_text(encoding="utf-8"))


def _sentences(text: str) -> list[str]:
    """Sentences of a README: split at . ! ? and at blank lines, bullets and headings (not at a wrapped line)."""
    text = re.sub(r"[*_`>#]+", " ", text)
    parts = re.split(r"(?<=[.!?])\s+|\n\s*\n|\n\s*(?:[-+]|\d+[.)])\s+", text)
    return [" ".join(p.split()) for p in parts if p.strip()]


def review_problem(text: str, owners: Sequence[str] = (), words: dict[str, Any] | None = None) -> str | None:
    """None when one sentence says who (a role) reviews the output (a verb of looking at it) and when;
    else what is missing, quoting the README's closest sentence."""
    need = (words or load_handover())["review"]
    doing, when = _any(need["doing"]), _any(need["when"])
    who = _any([*need["who"], *(str(o) for o in owners if str(o).strip())])
    best: tuple[int, str, list[str]] | None = None
    for sentence in _sentences(text):
        if not doing.search(sentence):
            continue
        missing = [part for part, pattern in (("who does it (a role, such as your brief's reviewer)", who),
                                              ("when (e.g. 'every Monday', 'before each send')", when))
                   if not pattern.search(sentence)]
        if not missing:
            return None
        if best is None or len(missing) < best[0]:
            best = (len(missing), sentence, missing)
    if best is None:
        return (f"your README does not say {need['what']}: no sentence says who reads, reviews or checks the "
                f"output (e.g. \"{need['example']}\")")
    quoted = best[1] if len(best[1]) <= 80 else best[1][:77] + "..."
    return (f"your README does not say {need['what']}: \"{quoted}\" does not say {' or '.join(best[2])}; "
            f"say {'both' if len(best[2]) > 1 else 'it'} in that sentence (e.g. \"{need['example']}\")")


def alert_problem(text: str, words: dict[str, Any] | None = None) -> str | None:
    """None when one sentence names an alert (or a rule that fires) and what a person then does."""
    need = (words or load_handover())["alert"]
    signal, doing = _any(need["signal"]), _any(need["doing"])
    if any(signal.search(s) and doing.search(s) for s in _sentences(text)):
        return None
    return f"your README does not say {need['what']} (e.g. \"{need['example']}\")"


def check_readme(folder: str | Path, *, strict: bool = True, quiet: bool = False) -> CheckResult:
    """README.md says what the workflow does, who owns it, who reviews what and when, and what to do on an alert.

    Read by meaning, not one word: the verbs, roles and times it accepts are data (handover.yaml).
    """
    result = CheckResult("readme", f"your README tells the team what it does, who owns it, who reviews the output "
                                   f"and when, and what to do when an alert fires (at least {MIN_README_WORDS} "
                                   "words of your own)")
    folder = Path(folder)
    if _missing_files(result, folder, ["README.md"]):
        return finish(result, strict=strict, quiet=quiet)
    text = learner_part(_read(folder, "README.md") or "")
    words = len(re.findall(r"\w+", text))
    if words < MIN_README_WORDS:
        result.fail(f"your README has {words} words; a colleague needs at least {MIN_README_WORDS} to run it alone")
    lower = text.lower()
    try:
        brief = _folder_brief(folder)
        owners = [o for o in (brief.ownership.prompt_owner, brief.ownership.reviewer) if o] if brief.ownership else []
    except Exception:  # noqa: BLE001 - the brief check reports a broken brief
        owners = []
    handover = load_handover()
    for problem in (alert_problem(text, handover), review_problem(text, owners, handover)):
        if problem:
            result.fail(problem)
    if owners and not any(str(o).lower() in lower for o in owners):
        result.fail(f"your README does not name the owner from your brief ({owners[0]})")
    result.hint = ("Write README in your own words: what it does, how to run it, who owns it, what to do on an "
                   "alert, and one sentence with who reviews the output and when, e.g. \"The email editor reads "
                   "every spotlight before the Thursday send.\"")
    return finish(result, strict=strict, quiet=quiet)


__all__ = [
    "BUDGET_ROWS",
    "FILES",
    "GENERATED",
    "PACKAGE_DIR",
    "TASK_KEYS",
    "UNSEEN_ROWS",
    "alert_problem",
    "check_brief",
    "check_monitoring",
    "check_package",
    "check_readme",
    "learner_part",
    "load_handover",
    "review_problem",
    "task_key",
    "unseen_rows",
]
