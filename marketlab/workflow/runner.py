"""run_batch: every row of a table through the model, with validation, repair, retries, a budget,
a cache and a checkpoint. One output row per input row, always, in input order.

Who does what:
- the main thread builds each row's messages (so a builder error or Ctrl-C stops cleanly), checks
  the checkpoint and the budget, and hands rows to worker threads in input order;
- a worker sends the request (cache first), retries 429/5xx/timeouts itself (the SDK's own retries
  are off: ``client.with_options(max_retries=0)``), validates the reply, and repairs it once;
- the main thread records each finished row in the checkpoint, settles the budget and moves the
  progress bar.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pandas as pd
from pydantic import BaseModel

from . import inputs
from .budget import Budget, Usage
from .cache import ResponseCache, request_key
from .checkpoint import Checkpoint, default_path, row_key
from .errors import WorkflowInputError
from .ratelimit import RateLimiter
from .redact import Redactor
from .result import RowResult
from .retry import CallFailure, RetryPolicy, classify
from .summary import summarize
from .validate import Rules, Verdict, read_reply, repair_messages

# Failures that are a property of the row's reply (a re-run would repeat them): kept in the checkpoint.
# Service trouble (429, 5xx, timeouts, a rejected key) is not: a resumed run tries those rows again.
FINISHED_KINDS = ("invalid_json", "schema", "truncated", "rules", "refused", "rejected")
INTERRUPT_GRACE_S = 5.0


class _CallError(Exception):
    """A request failed for good (after retries, or not retryable)."""

    def __init__(self, failure: CallFailure, calls: int, retries: int, note: str = "") -> None:
        super().__init__(failure.detail)
        self.failure, self.calls, self.retries, self.note = failure, calls, retries, note


class _NoBudget(Exception):
    """A repair request did not fit in the budget."""


@dataclass
class _Reply:
    content: str | None
    finish_reason: str | None
    refusal: str | None
    prompt_tokens: int
    completion_tokens: int

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_batch(df: pd.DataFrame, build_messages: Callable[..., Any], schema: type[BaseModel],
              client: openai.OpenAI, model: str | None = None, *, brief: Any = None, rules: Rules | None = None,
              workers: int = 4, rpm: float | None = None, max_tokens: int = 400, temperature: float = 0.0,
              seed: int | None = None, token_budget: int | None = None, cost_budget_usd: float | None = None,
              prices: tuple[float, float] | None = None, retry: RetryPolicy | None = None,
              request_timeout: float = 120.0, repair: bool = True, describe_schema: bool = True,
              cache: bool | str | Path = True, checkpoint: bool | str | Path = True, retry_failed: bool = False,
              include: Sequence[str] = (), required_columns: Sequence[str] = (), progress: bool = True,
              show_summary: bool = True) -> pd.DataFrame:
    """Run build_messages + the model on every row of df; one validated output row per input row, in order."""
    if model is None:
        from marketlab import llm

        model = llm.model_name()
    run = _Run(df, build_messages, schema, client, model, brief=brief, rules=rules, workers=workers, rpm=rpm,
               max_tokens=max_tokens, temperature=temperature, seed=seed, token_budget=token_budget,
               cost_budget_usd=cost_budget_usd, prices=prices, retry=retry or RetryPolicy(),
               request_timeout=request_timeout, repair=repair, describe_schema=describe_schema, cache=cache,
               checkpoint=checkpoint, retry_failed=retry_failed, include=include,
               required_columns=required_columns, progress=progress)
    out = run.execute()
    if show_summary:
        print(summarize(out))
    return out


def schema_instruction(json_schema: dict[str, Any]) -> str:
    """A short line per field telling the model what to put where (small models need the words)."""
    lines = ["Reply with one JSON object with exactly these fields:"]
    for name, prop in json_schema.get("properties", {}).items():
        kind = {"string": "text", "integer": "whole number", "number": "number", "boolean": "true or false",
                "array": "list"}.get(prop.get("type"), "value")
        if prop.get("enum"):
            kind = "one of " + ", ".join(json.dumps(v) for v in prop["enum"])
        limits = []
        for key, words in (("maxLength", "at most {} characters"), ("minLength", "at least {} characters"),
                           ("minimum", "at least {}"), ("maximum", "at most {}"), ("maxItems", "at most {} items"),
                           ("minItems", "at least {} items")):
            if key in prop:
                limits.append(words.format(prop[key]))
        about = f" ({', '.join(limits)})" if limits else ""
        described = f": {prop['description']}" if prop.get("description") else ""
        lines.append(f"- {name}: {kind}{about}{described}")
    return "\n".join(lines)


def _with_instruction(messages: list[dict[str, Any]], instruction: str) -> list[dict[str, Any]]:
    out = [dict(m) for m in messages]
    out[-1]["content"] = f"{out[-1]['content']}\n\n{instruction}"
    return out


def _fingerprint(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _rules_identity(rules: Rules | None) -> Any:
    if rules is None:
        return None
    return [dict(rules.max_words), dict(rules.min_words), dict(rules.max_chars),
            {k: list(v) for k, v in rules.ranges.items()}, list(rules.required), list(rules.banned_words),
            [getattr(fn, "__qualname__", type(fn).__name__) for fn in rules.custom]]


def _frame_hash(df: pd.DataFrame) -> str:
    try:
        raw = pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes()
    except TypeError:  # unhashable cells such as lists
        raw = df.to_json(default_handler=str).encode("utf-8")
    return hashlib.sha256(raw + "|".join(map(str, df.columns)).encode("utf-8")).hexdigest()


class _Run:
    """The state of one run_batch call."""

    def __init__(self, df: pd.DataFrame, builder: Callable[..., Any], schema: type[BaseModel],
                 client: openai.OpenAI, model: str, *, brief: Any, rules: Rules | None, workers: int,
                 rpm: float | None, max_tokens: int, temperature: float, seed: int | None,
                 token_budget: int | None, cost_budget_usd: float | None, prices: tuple[float, float] | None,
                 retry: RetryPolicy, request_timeout: float, repair: bool, describe_schema: bool,
                 cache: bool | str | Path, checkpoint: bool | str | Path, retry_failed: bool,
                 include: Sequence[str], required_columns: Sequence[str], progress: bool) -> None:
        inputs.check_frame(df, [*required_columns, *include])
        self.json_schema = inputs.check_schema(schema)
        inputs.check_client(client, model)
        self.takes_brief = inputs.builder_takes_brief(builder)
        if self.takes_brief and brief is None:
            raise WorkflowInputError(
                "build_messages takes (brief, record), but no brief was given.",
                "Pass brief=... (e.g. marketlab.artifacts.load_brief()), or write build_messages(record).")
        if not isinstance(workers, int) or workers < 1:
            raise WorkflowInputError(f"workers is {workers!r}.", "Use a whole number of 1 or more, e.g. workers=4.")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise WorkflowInputError(f"max_tokens is {max_tokens!r}.",
                                     "Use a whole number of tokens per reply, e.g. max_tokens=300.")
        for name, value in (("token_budget", token_budget), ("cost_budget_usd", cost_budget_usd)):
            if value is not None and (not isinstance(value, (int, float)) or value < 0):
                raise WorkflowInputError(f"{name} is {value!r}.", f"Use a positive number, or leave {name} out.")
        clash = [c for c in include if c in schema.model_fields]
        if clash:
            raise WorkflowInputError(f"include= names column(s) {clash} that are also fields of the schema.",
                                     "Leave them out of include=, or rename the schema fields.")
        self.df, self.builder, self.schema, self.model, self.brief = df, builder, schema, model, brief
        self.rules, self.workers, self.retry, self.repair = rules, workers, retry, repair
        self.include = list(include)
        self.progress = progress
        self.retry_failed = retry_failed
        self.instruction = schema_instruction(self.json_schema) if describe_schema else None
        self.params = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
        # The runner retries; the SDK must not retry as well, or attempts multiply.
        self.api = client.with_options(max_retries=0, timeout=request_timeout)
        self.redact = Redactor([getattr(client, "api_key", None)])
        self.limiter = RateLimiter(rpm)
        self.budget = Budget(model, max_tokens, token_budget, cost_budget_usd, prices)
        if cost_budget_usd is not None and self.budget.cost(1000, 1000) is None:
            raise WorkflowInputError(
                f"A cost budget is set, but marketlab has no price for the model '{model}'.",
                "Pass prices=(input_usd, output_usd) per million tokens, or use token_budget= instead.")
        self.fingerprint = _fingerprint(model, self.json_schema, self.params, _rules_identity(rules), repair,
                                        describe_schema)
        self.cache = None
        if cache:
            self.cache = ResponseCache(None if cache is True else cache)
        self.checkpoint = None
        if checkpoint:
            path = default_path(_fingerprint(self.fingerprint, _frame_hash(df))) if checkpoint is True else checkpoint
            self.checkpoint = Checkpoint(path)
        self.aborted: str | None = None
        self.stopped = False
        self.notes: list[str] = []

    # -- one request, with cache and retries (worker thread) --------------------------------
    def _request(self, messages: list[dict[str, Any]],
                 reserve: Callable[[], bool] | None = None) -> tuple[_Reply, bool, int, int]:
        """(reply, from_cache, calls, retries); raises _CallError or _NoBudget."""
        key = request_key(self.model, messages, self.json_schema, self.params) if self.cache is not None else ""
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return _Reply(**hit), True, 0, 0
        if reserve is not None and not reserve():
            raise _NoBudget()
        calls = 0
        while True:
            calls += 1
            self.limiter.acquire()
            try:
                raw = self.api.chat.completions.with_raw_response.parse(
                    model=self.model, messages=messages, response_format=self.schema,
                    max_tokens=self.params["max_tokens"], temperature=self.params["temperature"],
                    **({"seed": self.params["seed"]} if self.params["seed"] is not None else {}))
                reply = self._read_payload(raw.http_response.json())
            except (openai.OpenAIError, ValueError) as err:
                failure = classify(err) or CallFailure(
                    "server_error", "the model service sent something that is not an API reply", True)
                note = ""
                if failure.retry_after is not None and failure.retry_after > self.retry.max_retry_after:
                    note = (f"; it asked to wait {failure.retry_after:g} s, longer than the "
                            f"{self.retry.max_retry_after:g} s allowed")
                    raise _CallError(failure, calls, calls - 1, note) from None
                if not failure.retryable or calls >= self.retry.max_attempts:
                    raise _CallError(failure, calls, calls - 1) from None
                wait_s = self.retry.delay(calls, failure.retry_after)
                if failure.kind == "rate_limit":
                    self.limiter.hold(wait_s)  # every worker waits: the limit is shared
                else:
                    time.sleep(wait_s)
                continue
            if self.cache is not None:
                stored = reply.to_json()
                stored["content"] = self.redact.value(stored["content"])
                self.cache.put(key, stored)
            return reply, False, calls, calls - 1

    @staticmethod
    def _read_payload(payload: Any) -> _Reply:
        if not isinstance(payload, dict) or not payload.get("choices"):
            raise ValueError("no choices in the reply")
        choice = payload["choices"][0]
        message = choice.get("message") or {}
        usage = payload.get("usage") or {}
        return _Reply(message.get("content"), choice.get("finish_reason"), message.get("refusal"),
                      int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))

    # -- one row (worker thread) ------------------------------------------------------------
    def _process(self, messages: list[dict[str, Any]], record: dict[str, Any]) -> tuple[RowResult, Usage]:
        """Request, validate, repair once; returns the result and what was reserved beyond the first call."""
        started = time.perf_counter()
        result = RowResult(None, "failed")
        extra = Usage()
        sources: list[bool] = []
        attempt = messages
        first: Verdict | None = None
        try:
            for stage in ("first", "repair"):
                reserve = None
                if stage == "repair" and self.budget.limited:
                    need = self.budget.estimate(attempt)

                    def reserve(need: Usage = need) -> bool:
                        nonlocal extra
                        if self.budget.try_reserve(need):
                            extra = extra + need
                            return True
                        return False
                try:
                    reply, cached, calls, retries = self._request(attempt, reserve)
                except _CallError as err:
                    result.calls += err.calls
                    result.retries += err.retries
                    result.error_kind, result.fatal = err.failure.kind, err.failure.fatal
                    tries = f" on all {err.calls} tries" if err.calls > 1 else ""
                    result.error = f"{err.failure.detail}{tries}{err.note}.{_fix(err.failure.kind)}"
                    if first is not None:
                        result.error = f"The reply needed a repair ({first.text()}), then {result.error}"
                    break
                except _NoBudget:
                    result.error_kind = "budget"
                    result.error = (f"The reply could not be used ({first.text() if first else ''}) and the budget "
                                    f"({self.budget.describe()}) had no room for a repair attempt.")
                    break
                sources.append(cached)
                result.calls += calls
                result.retries += retries
                if not cached:  # tokens and cost are what this run spent: cache hits are free
                    result.prompt_tokens += reply.prompt_tokens
                    result.completion_tokens += reply.completion_tokens
                    self.budget.learn(attempt, reply.prompt_tokens)
                verdict = read_reply(reply.content, reply.finish_reason, self.schema, self.rules, record,
                                     reply.refusal, self.params["max_tokens"])
                if verdict.ok and verdict.parsed is not None:
                    result.status = "ok" if stage == "first" else "repaired"
                    result.fields = verdict.parsed.model_dump(mode="json")
                    break
                if stage == "first" and self.repair:
                    first = verdict
                    attempt = repair_messages(messages, reply.content, verdict)
                    continue
                result.error_kind = verdict.kind or "schema"
                again = " after one repair attempt" if first is not None else ""
                result.error = f"Unusable reply{again}: {verdict.text()}.{_fix(result.error_kind)}"
                break
        except Exception as err:  # a bug must cost one row, not the run
            result.status, result.error_kind = "failed", "rejected"
            result.error = f"Unexpected {type(err).__name__} while calling the model: {str(err)[:200]}"
        result.source = "cache" if sources and all(sources) else ("model" if sources or result.calls else "none")
        result.prompt_tokens, result.completion_tokens = int(result.prompt_tokens), int(result.completion_tokens)
        result.cost_usd = self.budget.cost(result.prompt_tokens, result.completion_tokens)
        result.latency_s = round(time.perf_counter() - started, 4)
        return result, extra

    # -- the main loop (main thread) --------------------------------------------------------
    def execute(self) -> pd.DataFrame:
        """Run every row and assemble the output table."""
        started = time.perf_counter()
        columns = list(self.df.columns)
        records = [inputs.to_record(r) for r in self.df.to_dict("records")]
        results: list[RowResult | None] = [None] * len(records)
        restored = self.checkpoint.load() if self.checkpoint else {}
        bar = _progress_bar(len(records), self.progress)
        pending: dict[Future, tuple[int, str, Usage, bool]] = {}
        executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="marketlab-workflow")

        def record_result(position: int, result: RowResult, key: str | None = None) -> None:
            self._clean(result)
            results[position] = result
            if key and self.checkpoint and self._finished(result):
                self.checkpoint.append(key, result.to_json())
            bar.update(1)

        def drain() -> None:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in done:
                position, key, reserved, cached = pending.pop(future)
                result, extra = future.result()  # a KeyboardInterrupt inside a worker surfaces here
                used = Usage(result.prompt_tokens + result.completion_tokens, result.cost_usd or 0.0)
                self.budget.settle(reserved + extra, used)
                if result.fatal and not self.aborted:
                    self.aborted = result.error
                record_result(position, result, key)

        try:
            for position, record in enumerate(records):
                if self.aborted:
                    record_result(position, self._not_run_after_abort())
                    continue
                if self.stopped:
                    record_result(position, self._skipped())
                    continue
                messages = self._build(position, record, columns)
                if isinstance(messages, RowResult):
                    record_result(position, messages)
                    continue
                if self.instruction:
                    messages = _with_instruction(messages, self.instruction)
                key = row_key(self.fingerprint, messages)
                old = restored.get(key)
                if old is not None and not (self.retry_failed and old.get("status") == "failed"):
                    result = RowResult.from_json(old)
                    result.source = "checkpoint"
                    spent = result.prompt_tokens + result.completion_tokens
                    self.budget.add_spent(Usage(spent, result.cost_usd or 0.0))
                    record_result(position, result)
                    continue
                cached = bool(self.cache is not None and self.cache.get(
                    request_key(self.model, messages, self.json_schema, self.params)) is not None)
                need = Usage() if cached or not self.budget.limited else self.budget.estimate(messages)
                while True:
                    while len(pending) >= self.workers:
                        drain()
                    if self.aborted:
                        break
                    if cached or not self.budget.limited or self.budget.try_reserve(need):
                        break
                    if not pending:  # nothing in flight and still no room: stop cleanly
                        self.stopped = True
                        self.notes.append(f"Stopped at the budget ({self.budget.describe()}) before row "
                                          f"{position + 1}; {len(records) - position} row(s) were not run.")
                        break
                    drain()
                if self.aborted:  # checked before any reservation was made for this row
                    record_result(position, self._not_run_after_abort())
                    continue
                if self.stopped:
                    record_result(position, self._skipped())
                    continue
                future = executor.submit(self._process, messages, record)
                pending[future] = (position, key, Usage() if cached else need, cached)
            while pending:
                drain()
        except KeyboardInterrupt:
            # Rows already handed out (at most `workers`) get a short grace period to finish and reach
            # the checkpoint; whatever is still running after it is redone on resume.
            deadline = time.monotonic() + INTERRUPT_GRACE_S
            try:
                while pending and time.monotonic() < deadline:
                    done, _ = wait(list(pending), timeout=max(0.0, deadline - time.monotonic()),
                                   return_when=FIRST_COMPLETED)
                    if done:
                        drain()
            except BaseException:  # a second Ctrl-C, or a worker interrupted too: stop waiting
                pass
            executor.shutdown(wait=False, cancel_futures=True)
            bar.close()
            saved = f" Finished rows are saved in {self.checkpoint.path}; run the same cell again to resume." \
                if self.checkpoint else " No checkpoint was kept (checkpoint=False), so a new run starts over."
            print(f"Interrupted after {sum(r is not None for r in results)} of {len(records)} rows.{saved}")
            self._close()
            raise
        executor.shutdown(wait=True)
        bar.close()
        if self.aborted:
            self.notes.append(f"The run stopped sending requests: {self.aborted}")
        if any(r and r.source == "checkpoint" for r in results):
            self.notes.append(f"Resumed from the checkpoint {self.checkpoint.path if self.checkpoint else ''}.")
        if self.checkpoint:
            if self.stopped:
                self.notes.append(f"Checkpoint kept at {self.checkpoint.path}: run again with a larger budget "
                                  "to finish the skipped rows.")
            else:
                self.checkpoint.remove()
        self._close()
        return self._table(results, started)

    def _build(self, position: int, record: dict[str, Any], columns: list[str]) -> list[dict[str, Any]] | RowResult:
        try:
            messages = self.builder(self.brief, record) if self.takes_brief else self.builder(record)
        except Exception as err:  # learner code can fail in any way; the row fails, the run goes on
            column = inputs.missing_column(err, columns)
            if column is not None and position == 0:
                raise WorkflowInputError(
                    f"build_messages needs a column '{column}' that the input table does not have. "
                    f"The table's columns are: {', '.join(map(repr, columns))}.",
                    f"Add a '{column}' column to the table, rename the matching column "
                    f"(df.rename(columns={{'old name': '{column}'}})), or change build_messages.") from None
            return RowResult(None, "failed", inputs.explain_builder_error(err, columns), "input")
        problem = inputs.message_problem(messages)
        if problem is not None:
            text, about_shape = problem
            if about_shape and position == 0:
                raise WorkflowInputError(f"{text}.", "Return a list like [{'role': 'system', 'content': '...'}, "
                                                     "{'role': 'user', 'content': '...'}].")
            return RowResult(None, "failed", f"{text[0].upper()}{text[1:]}.", "input")
        return messages

    def _skipped(self) -> RowResult:
        return RowResult(None, "skipped_budget", f"Not run: the budget ({self.budget.describe()}) was reached.",
                         "budget")

    def _not_run_after_abort(self) -> RowResult:
        return RowResult(None, "failed", f"Not sent, because an earlier row showed that every request would fail: "
                                         f"{self.aborted}", "auth" if "key" in (self.aborted or "") else "rejected")

    @staticmethod
    def _finished(result: RowResult) -> bool:
        return result.status in ("ok", "repaired") or (result.status == "failed"
                                                        and result.error_kind in FINISHED_KINDS)

    def _clean(self, result: RowResult) -> None:
        result.error = self.redact(result.error)
        if result.fields:
            result.fields = _redact_tree(result.fields, self.redact)

    def _close(self) -> None:
        if self.cache is not None:
            self.cache.close()

    def _table(self, results: list[RowResult | None], started: float) -> pd.DataFrame:
        fields = list(self.schema.model_fields)
        rows = []
        for position, result in enumerate(results):
            assert result is not None, "every row has a result"
            row: dict[str, Any] = {c: self.df.iloc[position][c] for c in self.include}
            row.update({name: (result.fields or {}).get(name) for name in fields})
            row.update(result.meta())
            rows.append(row)
        out = pd.DataFrame(rows, index=self.df.index)
        out.attrs["workflow"] = {"wall_s": round(time.perf_counter() - started, 3), "model": self.model,
                                 "budget": None if not self.budget.limited else self.budget.describe(),
                                 "notes": list(self.notes)}
        return out


def _fix(kind: str) -> str:
    return {
        "rate_limit": " Fix: lower workers= or set rpm=, or run again later; finished rows are kept.",
        "server_error": " Fix: run again later; finished rows are kept.",
        "timeout": " Fix: raise request_timeout= or lower max_tokens=.",
        "connection": " Fix: check the network, or run `marketlab doctor`.",
        "auth": " Fix: check OPENAI_API_KEY (or run `marketlab doctor`).",
        "rejected": " Fix: check the model name and the messages.",
        "truncated": " Fix: raise max_tokens=, or ask for shorter fields in the brief and schema.",
        "invalid_json": " Fix: make the brief ask for the JSON fields plainly; keep fields few and simple.",
        "schema": " Fix: loosen the schema or say its limits in the brief.",
        "rules": " Fix: say the limit in the brief (e.g. the word count), or loosen the rule.",
    }.get(kind, "")


def _redact_tree(value: Any, redact: Redactor) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_tree(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_tree(v, redact) for v in value]
    return value


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="rows", unit="row")


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass
