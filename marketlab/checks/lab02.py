"""Checks for Lab 2 (the workflow): output schema, rules, the cost of a week, and workflow.py itself.

check_workflow runs the learner's saved workflow.py in a fresh Python process (through a Harness:
a plain process in the notebook, the grading sandbox in grading), on a table, against a scripted
endpoint that stays in the checking process and injects faults (429, 500, timeout, malformed and
truncated JSON). What was sent and how many tokens were served is observed there, never reported
by the learner's process. The notebook passes a few lab products; the grader the holdout catalogue.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from marketlab.llm import estimate_cost
from marketlab.llm.testing import Fault, ScriptedEndpoint, default_reply, example_for_schema
from marketlab.workflow import META_COLUMNS, STATUSES, Rules

from ..grading import wire
from ..grading.harness import Harness, LocalHarness, ModuleProcess
from . import extract
from ._report import CheckResult, describe_error, finish, saved_file_missing

PROBE_TIMEOUT_S = 240
BUDGET_ROWS = 10
TEXT_LIMIT_KEYS = ("max_length",)


# -- 1. the output schema -------------------------------------------------------------------

def check_schema(schema: Any, *, strict: bool = True, quiet: bool = False) -> CheckResult:
    """The schema is a pydantic model with described fields, a length limit, and can be saved.

    `schema` is the class, or its description from marketlab.checks.extract.schema_facts (graders).
    """
    result = CheckResult("schema", "the output schema has described fields, a length limit, and can be saved")
    facts = schema if isinstance(schema, dict) else extract.schema_facts(schema)
    if not facts.get("is_model"):
        result.fail(f"ProductCopy is a {facts.get('type', '?')}, "
                    "not a class written as `class ProductCopy(BaseModel):`")
        result.hint = "Keep the first line `class ProductCopy(BaseModel):` and one indented line per field."
        return finish(result, strict=strict, quiet=quiet)
    fields = facts.get("fields") or []
    if len(fields) < 2:
        result.fail(f"it has {len(fields)} field(s); a headline and a description make at least two")
    if not any(f.get("text") for f in fields):
        result.fail("no field holds text (str)")
    undescribed = [str(f.get("name")) for f in fields if not str(f.get("description") or "").strip()]
    if undescribed:
        result.fail(f"field(s) without a description: {', '.join(undescribed)}; the model reads the descriptions")
    if not any(f.get("max_length") for f in fields):
        result.fail("no field has a length limit (max_length=...), so a rambling reply passes")
    if facts.get("save_error"):
        result.fail(f"it cannot be saved into workflow.py: {facts['save_error']}")
    if not result.passed:
        result.hint = ("Write each field as `name: str = Field(description='what goes here', max_length=60)`. "
                       "Give the headline a max_length and every field a description.")
    return finish(result, strict=strict, quiet=quiet)


# -- 2. the rules -------------------------------------------------------------------------

class _Reply:
    """A stand-in parsed reply: Rules.problems only reads model_dump()."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def model_dump(self) -> dict[str, Any]:
        return dict(self._values)


def _sample_reply(facts: dict[str, Any], field: str, text: str) -> Any:
    values = {str(f["name"]): (text if f["name"] == field else ("ok" if f.get("text") else None))
              for f in facts.get("fields") or []}
    return _Reply(values)


def check_rules(rules: Any, schema: Any, brief: Any, banned_words: Iterable[str], *, strict: bool = True,
                quiet: bool = False) -> CheckResult:
    """The rules enforce the brief's word limits on a schema field and every banned word of the brand voice.

    `rules` is a Rules object or its data (extract.rules_data); `schema` the class or its facts.
    """
    result = CheckResult("rules", "the rules take both word limits from the brief and catch every banned word "
                                  "from the brand voice")
    data = rules if isinstance(rules, dict) else extract.rules_data(rules)
    rebuilt = extract.rules_from_data(data)
    if rebuilt is None:
        result.fail(f"RULES is a {data.get('type', '?')}, not Rules(...)")
        result.hint = ("Start from Rules.from_brief(brief, 'description'). If you used .with_banned_words(...), "
                       "assign the result back: RULES = Rules.from_brief(...).with_banned_words(...).")
        return finish(result, strict=strict, quiet=quiet)
    facts = schema if isinstance(schema, dict) else extract.schema_facts(schema)
    names = {str(f["name"]) for f in facts.get("fields") or []}
    hints: list[str] = []
    unknown = sorted(rebuilt.fields() - names)
    if unknown:
        result.fail(f"the rules name field(s) the schema does not have: {', '.join(unknown)}")
    output = getattr(brief, "output", None)
    high = getattr(output, "max_words", None)
    low = getattr(output, "min_words", None)
    word_fields = [name for name in rebuilt.max_words if name in names]
    if not word_fields:
        result.fail("no max_words rule on a field of the schema")
    elif high:
        field = word_fields[0]
        if rebuilt.max_words[field] > high:
            result.fail(f"max_words for '{field}' is {rebuilt.max_words[field]}, above the brief's {high}")
        long_text = " ".join(["trail"] * (high + 5))
        if not any("words" in p for p in rebuilt.problems(_sample_reply(facts, field, long_text))):
            result.fail(f"a {high + 5}-word '{field}' was not flagged")
        if low and low > 1:
            short_text = " ".join(["trail"] * max(low - 5, 1))
            if not any("words" in p for p in rebuilt.problems(_sample_reply(facts, field, short_text))):
                result.fail(f"a {max(low - 5, 1)}-word '{field}' was not flagged although the brief asks for at "
                            f"least {low} words")
                hints.append("Rules.from_brief takes min_words too: set min_words in the brief's output section.")
    missing = []
    target = next((str(f["name"]) for f in facts.get("fields") or [] if f.get("text")), None)
    for word in banned_words:
        if target is None:
            break
        if not rebuilt.problems(_sample_reply(facts, target, f"A truly {word} pack for the hills.")):
            missing.append(word)
    if missing:
        result.fail(f"banned word(s) not caught: {', '.join(missing[:6])}" + (" ..." if len(missing) > 6 else ""))
        if not rebuilt.banned_words:
            hints.append("RULES has no banned words at all: .with_banned_words(...) returns new rules, so assign "
                         "the result back: RULES = Rules.from_brief(brief, 'description').with_banned_words("
                         "voice['banned_words']).")
    if not result.passed:
        hints.append("Use Rules.from_brief(brief, 'description') for the word limits, then "
                     ".with_banned_words(voice['banned_words']) for the brand voice.")
    result.hint = " ".join(dict.fromkeys(hints))
    return finish(result, strict=strict, quiet=quiet)


# -- 3. what a week costs -------------------------------------------------------------------

def _results_table(rows: int, prompt: int, completion: int, failed: int = 0) -> pd.DataFrame:
    """A trial's results; a failed row was sent twice (the repair attempt), so it used twice the tokens.

    The failed rows' tokens differ on purpose: an average over the `ok` rows alone then gives the
    wrong week, as it would at work, where failed requests are billed like any other.
    """
    statuses = ["ok"] * (rows - failed) + ["failed"] * failed
    return pd.DataFrame({"status": statuses,
                         "prompt_tokens": [prompt] * (rows - failed) + [2 * prompt] * failed,
                         "completion_tokens": [completion] * (rows - failed) + [2 * completion] * failed})


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
        expected = per_week * (estimate_cost(model, table["prompt_tokens"].mean(),
                                             table["completion_tokens"].mean()) or 0.0)
        call = (f"weekly_cost(<{rows} rows, {failed} failed, {prompt}+{completion} tokens per ok row>, "
                f"{per_week}, {model!r})")
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
        result.hint = ("Every row was paid for, failed ones too: change the paid line so it keeps every row "
                       "(paid = results), and keep the two lines under it, which average the tokens per row, price "
                       "one average row with estimate_cost and multiply by rows_per_week.")
    return finish(result, strict=strict, quiet=quiet)


# -- 4. the saved workflow, run in a clean process with faults ------------------------------

FILLER = "Light and tough gear for long days on the trail, packed with the specs that matter most".split()
FAULTS = ("rate_limit", "server_error", "timeout", "truncated_json", "malformed_json")


def _valid_reply(body: dict[str, Any], rules: Rules | None) -> str | None:
    """A reply that meets the requested schema and the workflow's own word limits, like a good model's."""
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


class _Observed:
    """What the checking process's endpoint saw during one run: requests and tokens served."""

    def __init__(self, endpoint: Any) -> None:
        self.endpoint = endpoint

    @property
    def messages(self) -> list[str]:
        return [json.dumps(r.get("messages", []), ensure_ascii=False) for r in self.endpoint.requests]

    @property
    def tokens(self) -> int:
        return int(sum(self.endpoint.tokens_served))

    def answered(self, name: str) -> bool:
        """Whether a usable reply (a JSON object) went out for a request that names this product."""
        return any(name in messages for messages in self.endpoint.usable_for)


def faulty_endpoint(fail_name: str, rules: Rules | None, faults: bool = True) -> _CountingEndpoint:
    """The scripted model of the workflow checks: faults first (faults=False: none), then replies that meet
    the schema and the rules' word limits, and malformed JSON for every request naming `fail_name`."""
    def responder(body: dict[str, Any]) -> Any:
        if fail_name and fail_name in json.dumps(body.get("messages", [])):
            return Fault.malformed_json()
        return _valid_reply(body, rules) or default_reply(body)

    injected = [Fault.rate_limit(retry_after=0.01), Fault.server_error(), Fault.timeout(), Fault.truncated_json(),
                Fault.malformed_json()] if faults else []
    return _CountingEndpoint(injected, responder)


class _CountingEndpoint(ScriptedEndpoint):
    """The scripted endpoint, also counting the tokens of every answer it gives."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tokens_served: list[int] = []
        # The messages of every request that got a usable reply: what the checking side saw for itself,
        # to hold a run's reported row statuses against (a learner's process can report anything).
        self.usable_for: list[str] = []

    @property
    def usable_replies(self) -> int:
        return len(self.usable_for)

    def _completion(self, body: dict[str, Any], content: str, finish: str) -> dict[str, Any]:  # type: ignore[override]  # the base is a staticmethod
        done = ScriptedEndpoint._completion(body, content, finish)
        self.tokens_served.append(int(done["usage"]["total_tokens"]))
        try:
            usable = finish == "stop" and isinstance(json.loads(content), dict)
        except (TypeError, ValueError):
            usable = False
        if usable:
            self.usable_for.append(json.dumps(body.get("messages", []), ensure_ascii=False))
        return done


def _run_once(served: ModuleProcess, harness: Harness, products: pd.DataFrame, fail_name: str,
              options: dict[str, Any], rules: Rules | None) -> tuple[dict[str, Any] | None, _Observed, str]:
    """One run of the served workflow against a fresh scripted endpoint; (result, what it saw, error)."""
    from ..grading.harness import serve

    endpoint = faulty_endpoint(fail_name, rules)
    with serve(endpoint, harness, timeout=1.0) as spec:
        try:
            result = served.request({"op": "run", "table": products, "client": spec, "options": options},
                                    timeout=PROBE_TIMEOUT_S)
        except wire.RemoteError as err:
            return None, _Observed(endpoint), describe_error(err)
        except wire.WireError as err:
            return None, _Observed(endpoint), str(err)
    return result if isinstance(result, dict) else None, _Observed(endpoint), ""


def check_workflow(products: pd.DataFrame, here: str | Path | None = None, *, foreign_names: Iterable[str] = (),
                   banned_words: Sequence[str] = (), harness: Harness | None = None, strict: bool = True,
                   quiet: bool = False) -> CheckResult:
    """workflow.py, imported in a clean process: saved schema and rules pass, every row back under faults,
    failures marked, the budget kept, and only the table's own products in the requests."""
    result = CheckResult("workflow", f"workflow.py runs on {len(products)} products in a fresh Python: every row "
                                     "back under faults, failures marked, budget kept, nothing hard-coded")
    folder = Path(here or Path.cwd())
    harness = harness or LocalHarness()
    if saved_file_missing(result, folder, "workflow.py"):
        return finish(result, strict=strict, quiet=quiet)
    names = [str(n) for n in products["name"]] if "name" in products.columns else []
    fail_name = names[1] if len(names) > 1 else ""
    argv = ["-m", "marketlab.grading.workflow_probe", harness.inside(folder / "workflow.py")]
    with harness.served(folder, argv) as served:
        saved: Any = None
        error = describe_error(served.load_error) if served.load_error else ""
        if not error:
            try:
                saved = served.request({"op": "describe"})
            except (wire.RemoteError, wire.WireError) as err:
                error = describe_error(err)
        if error or not isinstance(saved, dict):
            result.fail(f"workflow.py could not run on its own: {error or 'no answer'}")
            result.hint = ("Save it again with the save cell; build_messages must use only its arguments and "
                           "marketlab, and run must accept (df, client, **options).")
            return finish(result, strict=strict, quiet=quiet)
        # The saved rules shape the scripted replies; then a run under faults, then the same run with
        # half the tokens it needed.
        rules = extract.rules_from_data(saved.get("rules") or {})
        first, seen, first_error = _run_once(served, harness, products, fail_name, {}, rules)
        # The budget run needs only enough rows to show a budget is kept: half the tokens the
        # first run spent on as many rows (scripted replies are all about the same size).
        few = products.head(BUDGET_ROWS)
        budget = max(1, seen.tokens * len(few) // (2 * max(1, len(products))))
        second, seen_budget, second_error = _run_once(served, harness, few, fail_name,
                                                      {"token_budget": budget}, rules)
    _judge(saved, first, first_error, seen, second, second_error, seen_budget, budget, products, names, fail_name,
           [str(n) for n in foreign_names], list(banned_words), result)
    return finish(result, strict=strict, quiet=quiet)


def _saved_parts_problems(report: dict[str, Any], banned_words: list[str]) -> list[str]:
    """Problems of the schema and rules saved in workflow.py (the same checks as the notebook's)."""
    if not report.get("schema"):
        return ["workflow.py has no output schema class"]
    problems = [f"saved schema: {p}" for p in check_schema(report["schema"], strict=False, quiet=True).problems]
    from marketlab import reference
    from marketlab.brief import Brief

    brief = reference.load_brief()
    if report.get("brief"):
        try:
            brief = Brief.model_validate(report["brief"])
        except Exception:  # noqa: BLE001 - a broken saved brief is judged with the reference one
            pass
    rules = check_rules(report.get("rules") or {}, report["schema"], brief, banned_words, strict=False, quiet=True)
    return problems + [f"saved rules: {p}" for p in rules.problems]


def _judge_run(label: str, got: dict[str, Any] | None, error: str, n: int, result: CheckResult,
               hints: list[str]) -> list[str]:
    if got is None:
        result.fail(f"{label}: run() stopped with {error or 'no answer'}")
        return []
    if got.get("type") != "DataFrame":
        result.fail(f"{label}: run returned a {got.get('type')}, not a table")
        return []
    if got.get("rows") != n or not got.get("index_same"):
        result.fail(f"{label}: {n} rows went in, {got.get('rows')} came back (or in another order)")
        hints.append("Return run_batch's table as it is; do not filter out failed rows.")
    missing = [c for c in META_COLUMNS if c not in got.get("columns", [])]
    if missing:
        result.fail(f"{label}: columns missing from the result: {', '.join(missing)}")
    statuses = [str(s) for s in got.get("status", [])]
    bad = sorted({s for s in statuses if s not in STATUSES})
    if bad:
        result.fail(f"{label}: unknown status values {bad[:5]}")
    errors = [str(e) for e in got.get("error", [])]
    unexplained = [i for i, (s, e) in enumerate(zip(statuses, errors)) if s not in ("ok", "repaired") and not e.strip()]
    if unexplained:
        result.fail(f"{label}: {len(unexplained)} failed row(s) without an error message")
    return statuses if got.get("rows") == n and got.get("index_same") else []


def _judge(saved: dict[str, Any], first: dict[str, Any] | None, first_error: str, seen: _Observed,
           second: dict[str, Any] | None, second_error: str, seen_budget: _Observed, budget: int,
           products: pd.DataFrame, names: list[str], fail_name: str, foreign: list[str], banned_words: list[str],
           result: CheckResult) -> None:
    hints: list[str] = []
    n = len(products)
    for problem in _saved_parts_problems(saved, banned_words):
        result.fail(problem)
        hints.append("Pass the checks for the schema and the rules above, then run the save cell again.")
    statuses = _judge_run("with faults", first, first_error, n, result, hints)
    if statuses:
        if fail_name and fail_name in names:
            position = names.index(fail_name)
            if statuses[position] != "failed":
                result.fail(f"the product whose replies were always broken ({fail_name}) came back as "
                            f"'{statuses[position]}', not 'failed'")
                hints.append("Keep repair to one attempt and let run_batch mark what it cannot fix.")
        claimed = [name for name, status in zip(names, statuses)
                   if status in ("ok", "repaired") and name and not seen.answered(name)]
        if claimed:
            result.fail(f"run() reported {len(claimed)} row(s) as usable that never got a usable reply from the "
                        f"model (first: {claimed[0]}); the checking side saw every request and reply")
            hints.append("Return run_batch's table as it is: its statuses come from the replies themselves.")
        usable = sum(s in ("ok", "repaired") for s in statuses)
        if usable > seen.endpoint.usable_replies and not claimed:  # one request naming every product, say
            result.fail(f"run() reported {usable} usable rows, but the model gave only "
                        f"{seen.endpoint.usable_replies} usable replies")
        # One row is broken on purpose; a second may be unlucky (a broken reply, then a broken repair).
        if usable < n - 2:
            result.fail(f"only {usable} of {n} rows were usable although every fault but one was temporary")
            hints.append("Keep retries on: transient 429/500/timeouts must not fail rows.")
    budget_statuses = _judge_run(f"with a budget of {budget} tokens", second, second_error,
                                 min(n, BUDGET_ROWS), result, hints)
    if second is not None:
        if seen_budget.tokens > budget:
            result.fail(f"with a budget of {budget} tokens the model served {seen_budget.tokens} tokens")
            hints.append("Pass **options through to run_batch so a budget given to run() is used.")
        if budget_statuses and "skipped_budget" not in budget_statuses:
            result.fail("with half the tokens it needed, no row was marked skipped_budget")
            hints.append("Pass **options through to run_batch so a budget given to run() is used.")
    sent = seen.messages
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
