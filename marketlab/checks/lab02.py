"""Checks for Lab 2 (the workflow): output schema, rules, the cost of a week, and workflow.py itself.

check_workflow runs the learner's saved workflow.py in a separate Python process, on a table,
through the scripted endpoint with faults injected (429, 500, timeout, malformed and truncated
JSON). The notebook passes a few lab products; the hidden grader passes the holdout catalogue.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from marketlab.llm import estimate_cost
from marketlab.workflow import META_COLUMNS, STATUSES, Rules, schema_source

from ._report import CheckResult, describe_error, finish

PROBE_TIMEOUT_S = 240
TEXT_LIMIT_KEYS = ("max_length",)


# -- 1. the output schema -------------------------------------------------------------------

def check_schema(schema: Any, *, strict: bool = True, quiet: bool = False) -> CheckResult:
    """The schema is a pydantic model with described fields, a length limit, and can be saved."""
    result = CheckResult("schema", "the output schema has described fields, a length limit, and can be saved")
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        result.fail(f"ProductCopy is {schema!r}, not a class written as `class ProductCopy(BaseModel):`")
        result.hint = "Keep the first line `class ProductCopy(BaseModel):` and one indented line per field."
        return finish(result, strict=strict, quiet=quiet)
    fields = schema.model_fields
    if len(fields) < 2:
        result.fail(f"it has {len(fields)} field(s); a headline and a description make at least two")
    text_fields = [n for n, f in fields.items() if f.annotation is str]
    if not text_fields:
        result.fail("no field holds text (str)")
    undescribed = [n for n, f in fields.items() if not (f.description or "").strip()]
    if undescribed:
        result.fail(f"field(s) without a description: {', '.join(undescribed)}; the model reads the descriptions")
    limited = [n for n, f in fields.items() if any(hasattr(m, "max_length") for m in f.metadata)]
    if not limited:
        result.fail("no field has a length limit (max_length=...), so a rambling reply passes")
    try:
        schema_source(schema)
    except ValueError as err:
        result.fail(str(err))
    if not result.passed:
        result.hint = ("Write each field as `name: str = Field(description='what goes here', max_length=60)`. "
                       "Give the headline a max_length and every field a description.")
    return finish(result, strict=strict, quiet=quiet)


# -- 2. the rules -------------------------------------------------------------------------

def _sample_reply(schema: type[BaseModel], field: str, text: str) -> BaseModel:
    values: dict[str, Any] = {}
    for name, info in schema.model_fields.items():
        values[name] = text if name == field else ("ok" if info.annotation is str else None)
    return schema.model_construct(**values)


def check_rules(rules: Any, schema: Any, brief: Any, banned_words: Iterable[str], *, strict: bool = True,
                quiet: bool = False) -> CheckResult:
    """The rules enforce the brief's word limit on a schema field and every banned word of the brand voice."""
    result = CheckResult("rules", "the rules catch over-long copy and every banned word from the brand voice")
    if not isinstance(rules, Rules):
        result.fail(f"RULES is {type(rules).__name__}, not Rules(...)")
        result.hint = "Start from Rules(max_words={...}, banned_words=...)."
        return finish(result, strict=strict, quiet=quiet)
    fields = set(getattr(schema, "model_fields", {}))
    unknown = sorted(rules.fields() - fields)
    if unknown:
        result.fail(f"the rules name field(s) the schema does not have: {', '.join(unknown)}")
    limit = getattr(getattr(brief, "output", None), "max_words", None)
    word_fields = [name for name in rules.max_words if name in fields]
    if not word_fields:
        result.fail("no max_words rule on a field of the schema")
    elif limit:
        field = word_fields[0]
        if rules.max_words[field] > limit:
            result.fail(f"max_words for '{field}' is {rules.max_words[field]}, above the brief's {limit}")
        long_text = " ".join(["trail"] * (limit + 5))
        if not any("words" in p for p in rules.problems(_sample_reply(schema, field, long_text))):
            result.fail(f"a {limit + 5}-word '{field}' was not flagged")
    missing = []
    target = next((n for n, f in getattr(schema, "model_fields", {}).items() if f.annotation is str), None)
    for word in banned_words:
        if target is None:
            break
        if not rules.problems(_sample_reply(schema, target, f"A truly {word} pack for the hills.")):
            missing.append(word)
    if missing:
        result.fail(f"banned word(s) not caught: {', '.join(missing[:6])}" + (" ..." if len(missing) > 6 else ""))
    if not result.passed:
        result.hint = ("Use Rules.from_brief(brief, 'description') for the word limits, then "
                       ".with_banned_words(voice['banned_words']) for the brand voice.")
    return finish(result, strict=strict, quiet=quiet)


# -- 3. what a week costs -------------------------------------------------------------------

def _results_table(rows: int, prompt: int, completion: int, failed: int = 0) -> pd.DataFrame:
    statuses = ["ok"] * (rows - failed) + ["failed"] * failed
    return pd.DataFrame({"status": statuses, "prompt_tokens": [prompt] * rows,
                         "completion_tokens": [completion] * rows})


COST_CASES: tuple[tuple[int, int, int, int, int, str], ...] = (
    # rows in the trial, prompt and completion tokens per row, failed rows, rows per week, model
    (10, 500, 120, 0, 400, "gpt-4o-mini"),
    (4, 800, 200, 1, 1000, "gpt-4.1-mini"),
)


def check_weekly_cost(fn: Callable[..., Any], cases: Sequence[tuple[int, int, int, int, int, str]] = COST_CASES,
                      *, strict: bool = True, quiet: bool = False) -> CheckResult:
    """fn(results, rows_per_week, model) scales the trial's average tokens per row to a week's cost in dollars."""
    result = CheckResult("weekly-cost", "weekly_cost turns a trial run into the dollar cost of a week")
    for rows, prompt, completion, failed, per_week, model in cases:
        table = _results_table(rows, prompt, completion, failed)
        expected = per_week * (estimate_cost(model, prompt, completion) or 0.0)
        call = f"weekly_cost(<{rows} rows, {prompt}+{completion} tokens each>, {per_week}, {model!r})"
        try:
            got = fn(table, per_week, model)
        except Exception as err:  # learner code may fail in any way
            result.fail(f"{call} stopped with {describe_error(err)}")
            continue
        if not isinstance(got, (int, float)) or isinstance(got, bool) or math.isnan(got):
            result.fail(f"{call} returned {got!r}, not a number of dollars")
        elif not math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-9):
            result.fail(f"{call} returned {got:.6f}, expected {expected:.6f}")
    if not result.passed:
        result.hint = ("Take the mean of results['prompt_tokens'] and results['completion_tokens'] (every row, "
                       "failed ones too: they were paid for), price one average row with estimate_cost(model, "
                       "prompt, completion), then multiply by rows_per_week. Use the arguments, not fixed numbers.")
    return finish(result, strict=strict, quiet=quiet)


# -- 4. the saved workflow, run in a clean process with faults ------------------------------

FILLER = "Light and tough gear for long days on the trail, packed with the specs that matter most".split()


def _valid_reply(body: dict[str, Any], rules: Rules | None) -> str | None:
    """A reply that meets the requested schema and the workflow's own word limits, like a good model's."""
    from marketlab.llm.testing import example_for_schema

    schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
    if not isinstance(schema, dict):
        return None
    reply = example_for_schema(schema)
    if not isinstance(reply, dict):
        return None
    for name, prop in schema.get("properties", {}).items():
        if prop.get("type") != "string" or prop.get("enum"):
            continue
        low = (rules.min_words.get(name) if rules else None) or 1
        high = (rules.max_words.get(name) if rules else None) or max(low, 12)
        words = [FILLER[i % len(FILLER)] for i in range((low + high) // 2)]
        text = " ".join(words)
        if "maxLength" in prop:
            text = text[: prop["maxLength"]].rsplit(" ", 1)[0] if len(text) > prop["maxLength"] else text
        reply[name] = text.ljust(prop.get("minLength", 0), ".")
    return json.dumps(reply)


def _probe(workflow_path: str, table_path: str, out_path: str, fail_name: str, banned_json: str) -> None:
    """Run inside the child process: import workflow.py, run it under faults and a budget, write a report."""
    import importlib.util

    from marketlab.llm.testing import Fault, ScriptedEndpoint, default_reply
    from marketlab.workflow import RetryPolicy

    report: dict[str, Any] = {}
    df = pd.read_pickle(table_path)
    spec = importlib.util.spec_from_file_location("learner_workflow", workflow_path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    report["saved"] = _saved_parts_problems(module, json.loads(banned_json))

    rules = getattr(module, "RULES", None)

    def responder(body: dict[str, Any]) -> Any:
        text = json.dumps(body.get("messages", []))
        if fail_name and fail_name in text:
            return Fault.malformed_json()
        return _valid_reply(body, rules if isinstance(rules, Rules) else None) or default_reply(body)

    options = {"model": "scripted", "cache": False, "checkpoint": False, "progress": False,
               "show_summary": False, "rpm": None, "retry": RetryPolicy(base_delay=0.01, max_delay=0.05)}
    for scenario, budget in (("faults", None), ("budget", "half")):
        endpoint = ScriptedEndpoint([Fault.rate_limit(retry_after=0.01), Fault.server_error(), Fault.timeout(),
                                     Fault.truncated_json(), Fault.malformed_json()], responder)
        extra = dict(options)
        if budget == "half":
            extra["token_budget"] = max(1, report["faults"]["tokens"] // 2)
        out = module.run(df, endpoint.client(), **extra)
        columns = list(out.columns) if isinstance(out, pd.DataFrame) else []
        report[scenario] = {
            "type": type(out).__name__, "rows": len(out) if isinstance(out, pd.DataFrame) else None,
            "index_same": isinstance(out, pd.DataFrame) and list(out.index) == list(df.index),
            "columns": columns,
            "status": [str(s) for s in out["status"]] if "status" in columns else [],
            "error": [str(e) for e in out["error"]] if "error" in columns else [],
            "tokens": int(out["prompt_tokens"].sum() + out["completion_tokens"].sum())
            if {"prompt_tokens", "completion_tokens"} <= set(columns) else 0,
            "budget": extra.get("token_budget"),
            "messages": [json.dumps(r.get("messages", []), ensure_ascii=False) for r in endpoint.requests],
        }
    Path(out_path).write_text(json.dumps(report), encoding="utf-8")


def _saved_parts_problems(module: Any, banned_words: list[str]) -> list[str]:
    """Problems of the schema and rules saved in workflow.py (the same checks as the notebook's)."""
    schemas = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, BaseModel)
               and v is not BaseModel and v.__module__ == module.__name__]
    if not schemas:
        return ["workflow.py has no output schema class"]
    problems = [f"saved schema: {p}" for p in check_schema(schemas[0], strict=False, quiet=True).problems]
    brief = getattr(module, "BRIEF", None)
    if getattr(brief, "output", None) is None:
        from marketlab import reference

        brief = reference.load_brief()
    rules = check_rules(getattr(module, "RULES", None), schemas[0], brief, banned_words, strict=False, quiet=True)
    return problems + [f"saved rules: {p}" for p in rules.problems]


def _probe_main() -> None:
    """Entry point of the child process (python -c ...)."""
    _probe(*sys.argv[1:6])


def run_probe(workflow_path: Path, products: pd.DataFrame, fail_name: str,
              banned_words: Sequence[str] = ()) -> tuple[dict[str, Any] | None, str]:
    """Run _probe in a fresh Python process; (report, error text)."""
    with tempfile.TemporaryDirectory(prefix="marketlab-lab02-") as tmp:
        table, out = Path(tmp) / "table.pkl", Path(tmp) / "report.json"
        products.to_pickle(table)
        env = {**os.environ, "MARKETLAB_HOME": tmp}
        env.pop("OPENAI_API_KEY", None)
        code = "from marketlab.checks.lab02 import _probe_main; _probe_main()"
        try:
            done = subprocess.run([sys.executable, "-c", code, str(workflow_path), str(table), str(out), fail_name,
                                   json.dumps(list(banned_words))],
                                  capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, cwd=tmp, env=env)
        except subprocess.TimeoutExpired:
            return None, f"workflow.py did not finish within {PROBE_TIMEOUT_S} s"
        if done.returncode != 0 or not out.exists():
            lines = [ln for ln in (done.stderr or "").strip().splitlines() if ln.strip()]
            return None, lines[-1] if lines else f"the process ended with code {done.returncode}"
        return json.loads(out.read_text(encoding="utf-8")), ""


def check_workflow(products: pd.DataFrame, here: str | Path | None = None, *, foreign_names: Iterable[str] = (),
                   banned_words: Sequence[str] = (), strict: bool = True, quiet: bool = False) -> CheckResult:
    """workflow.py, imported in a clean process: saved schema and rules pass, every row back under faults,
    failures marked, the budget kept, and only the table's own products in the requests."""
    result = CheckResult("workflow", f"workflow.py runs on {len(products)} products in a fresh Python: every row "
                                     "back under faults, failures marked, budget kept, nothing hard-coded")
    path = Path(here or Path.cwd()) / "workflow.py"
    if not path.is_file():
        result.fail(f"there is no {path.name} in {path.parent}")
        result.hint = "Run the save cell above: it writes workflow.py next to this notebook."
        return finish(result, strict=strict, quiet=quiet)
    names = [str(n) for n in products["name"]] if "name" in products.columns else []
    fail_name = names[1] if len(names) > 1 else ""
    report, error = run_probe(path, products, fail_name, banned_words)
    if report is None:
        result.fail(f"workflow.py could not run on its own: {error}")
        result.hint = ("Save it again with the save cell; build_messages must use only its arguments and "
                       "marketlab, and run must accept (df, client, **options).")
        return finish(result, strict=strict, quiet=quiet)
    _judge(report, products, names, fail_name, [str(n) for n in foreign_names], result)
    return finish(result, strict=strict, quiet=quiet)


def _judge(report: dict[str, Any], products: pd.DataFrame, names: list[str], fail_name: str,
           foreign: list[str], result: CheckResult) -> None:
    hints: list[str] = []
    n = len(products)
    for problem in report.get("saved", []):
        result.fail(problem)
        hints.append("Pass the checks for the schema and the rules above, then run the save cell again.")
    for scenario in ("faults", "budget"):
        got = report[scenario]
        label = "with faults" if scenario == "faults" else f"with a budget of {got['budget']} tokens"
        if got["type"] != "DataFrame":
            result.fail(f"{label}: run returned a {got['type']}, not a table")
            continue
        if got["rows"] != n or not got["index_same"]:
            result.fail(f"{label}: {n} rows went in, {got['rows']} came back (or in another order)")
            hints.append("Return run_batch's table as it is; do not filter out failed rows.")
        missing = [c for c in META_COLUMNS if c not in got["columns"]]
        if missing:
            result.fail(f"{label}: columns missing from the result: {', '.join(missing)}")
        bad = sorted({s for s in got["status"] if s not in STATUSES})
        if bad:
            result.fail(f"{label}: unknown status values {bad}")
        unexplained = [i for i, (s, e) in enumerate(zip(got["status"], got["error"])) if s != "ok" and s != "repaired"
                       and not e.strip()]
        if unexplained:
            result.fail(f"{label}: {len(unexplained)} failed row(s) without an error message")
    faults = report["faults"]
    if faults["status"] and faults["rows"] == n and faults["index_same"]:
        if fail_name and fail_name in names:
            position = names.index(fail_name)
            if position < len(faults["status"]) and faults["status"][position] != "failed":
                result.fail(f"the product whose replies were always broken ({fail_name}) came back as "
                            f"'{faults['status'][position]}', not 'failed'")
                hints.append("Keep repair to one attempt and let run_batch mark what it cannot fix.")
        usable = sum(s in ("ok", "repaired") for s in faults["status"])
        # One row is broken on purpose; a second may be unlucky (a broken reply, then a broken repair).
        if usable < n - 2:
            result.fail(f"only {usable} of {n} rows were usable although every fault but one was temporary")
            hints.append("Keep retries on: transient 429/500/timeouts must not fail rows.")
    budget = report["budget"]
    if budget["status"]:
        if budget["tokens"] > (budget["budget"] or 0):
            result.fail(f"the run used {budget['tokens']} tokens with a budget of {budget['budget']}")
            hints.append("Pass **options through to run_batch so a budget given to run() is used.")
        if "skipped_budget" not in budget["status"]:
            result.fail("with half the tokens it needed, no row was marked skipped_budget")
            hints.append("Pass **options through to run_batch so a budget given to run() is used.")
    sent = faults["messages"]
    absent = [name for name in names if name and not any(name in m for m in sent)]
    if absent:
        result.fail(f"no request mentioned the product(s): {', '.join(absent[:3])}")
        hints.append("Build each request from record, so every product's own facts are sent.")
    leaked = sorted({name for name in foreign if name and name not in names and any(name in m for m in sent)})
    if leaked:
        result.fail(f"requests mention products that are not in the table: {', '.join(leaked[:3])}")
        hints.append("Do not write product names into build_messages or the brief; take them from record.")
    result.hint = " ".join(dict.fromkeys(hints)) or ("Save the workflow again with the save cell, then rerun "
                                                     "this check.")
