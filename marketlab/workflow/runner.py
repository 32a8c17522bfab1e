"""run_batch: every row of a table through the model, with validation, repair, retries, a budget,
a cache and a checkpoint. One output row per input row, always, in input order.

Who does what:
- the main thread builds each row's messages (so a builder error or Ctrl-C stops cleanly), checks
  the checkpoint, the cache and the budget, and hands rows to worker threads in input order;
- a worker sends the request, retries 429/5xx/timeouts itself (the SDK's own retries are off:
  ``client.with_options(max_retries=0)``), settles each call with the budget, validates the
  reply, and repairs it once;
- the main thread records each finished row in the checkpoint and moves the progress bar.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Optional

import openai
import pandas as pd
from pydantic import BaseModel

from marketlab.evaluate.checks import check_list
from marketlab.evaluate.suite import DEFAULT_CHANNEL, check_texts

from . import inputs
from .budget import BudgetMeter, Usage
from .cache import ResponseCache, request_key
from .checkpoint import Checkpoint, default_path, row_key
from .errors import WorkflowInputError
from .ratelimit import RateLimiter
from .redact import Redactor
from .result import RowResult
from .retry import CallFailure, classify
from .settings import RunSettings
from .summary import summarize
from .validate import Rules, Verdict, read_reply, repair_messages

# Failures that are a property of the row's reply (a re-run would repeat them): kept in the checkpoint.
# Service trouble (429, 5xx, timeouts, a rejected key) and the budget are not: a resumed run tries
# those rows again.
FINISHED_KINDS = ("invalid_json", "schema", "truncated", "rules", "refused", "rejected")
INTERRUPT_GRACE_S = 5.0


class _CallError(Exception):
    """A request failed for good (after retries, or not retryable)."""

    def __init__(self, failure: CallFailure, calls: int, waited: float, note: str = "") -> None:
        super().__init__(failure.detail)
        self.failure, self.calls, self.waited, self.note = failure, calls, waited, note


class _NoBudget(Exception):
    """A repair request did not fit in the budget, with nothing else in flight."""

    def __init__(self, need: Usage) -> None:
        super().__init__("no budget")
        self.need = need


@dataclass
class _Reply:
    content: str | None
    finish_reason: str | None
    refusal: str | None
    prompt_tokens: int
    completion_tokens: int

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Sent:
    """One request's outcome: the reply, whether the cache gave it, the calls made and the time spent waiting."""

    reply: _Reply
    cached: bool
    calls: int
    waited: float


def run_batch(df: pd.DataFrame, build_messages: Callable[..., Any], schema: type[BaseModel],
              client: openai.OpenAI, model: str | None = None, *, brief: Any = None, rules: Rules | None = None,
              settings: RunSettings | None = None, checks: Sequence[Any] | None = None, check_text: str | None = None,
              **options: Any) -> pd.DataFrame:
    """Run build_messages + the model on every row of df; one validated output row per input row, in order.

    How the run behaves is one RunSettings value; keywords such as ``workers=4``, ``max_tokens=150``,
    ``include=["sku"]`` or ``token_budget=50_000`` change single settings (see settings.KEYWORDS).

    checks (marketlab.evaluate checks, e.g. [banned_words(), faithfulness()]) are run on every usable
    reply's `check_text` field (default: the schema's longest text field), with the input row as the
    product facts and its `channel` column (or "web"): one True/False column `check_<name>` per check,
    a verdict column `checks` ("passed", "failed", "unchecked" when no check recognised a claim, or "not checked"
    when there was no usable reply) and `check_reason`. `status` still
    says only whether the reply had the right shape.
    """
    chosen = RunSettings.build(settings, **options)
    plan = _CheckPlan.build(checks, check_text, schema) if checks is not None else None
    if model is None:
        from marketlab import llm

        model = llm.model_name()
    out = _Run(df, build_messages, schema, client, model, brief, rules, chosen).execute()
    if plan is not None:
        out = plan.apply(out, df)
    if chosen.show_summary:
        print(summarize(out))
    return out


@dataclass(frozen=True)
class _CheckPlan:
    """Which checks run on which reply field, checked before any request is sent."""

    checks: list[Any]
    field: str

    @classmethod
    def build(cls, checks: Sequence[Any], check_text: str | None, schema: type[BaseModel]) -> _CheckPlan:
        chosen = check_list(checks)
        texts = [name for name, info in schema.model_fields.items() if info.annotation in (str, Optional[str])]  # noqa: UP045  # the annotation object pydantic keeps
        if check_text is None:
            if not texts:
                raise WorkflowInputError(f"checks= needs a text field to read, and {schema.__name__} has none.",
                                         "Add a text field (e.g. description: str) or leave checks out.")
            check_text = max(texts, key=lambda name: _declared_length(schema, name))
        elif check_text not in schema.model_fields:
            raise WorkflowInputError(f"check_text='{check_text}' is not a field of {schema.__name__}.",
                                     f"Use one of its fields: {', '.join(schema.model_fields)}.")
        return cls(chosen, check_text)

    def apply(self, out: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
        """The output table with one column per check, the verdict `checks` and `check_reason`."""
        usable = out["status"].isin(["ok", "repaired"]).to_numpy()
        positions = [i for i, ok in enumerate(usable) if ok]
        records = df.to_dict("records")
        channels = [str(r["channel"]).strip() if isinstance(r.get("channel"), str) and r["channel"].strip()
                    else DEFAULT_CHANNEL for r in records]
        verdicts = check_texts([out[self.field].iloc[i] for i in positions], [records[i] for i in positions],
                               [channels[i] for i in positions], self.checks)
        out = out.copy()
        for check in self.checks:
            column = pd.Series(pd.NA, index=out.index, dtype="boolean")
            column.iloc[positions] = verdicts.passed[check.name]
            out[f"check_{check.name}"] = column
        verdict = pd.Series("not checked", index=out.index, dtype=object)
        reason = pd.Series("", index=out.index, dtype=object)
        for i, outcome, text in zip(positions, verdicts.outcomes, verdicts.reasons):
            verdict.iloc[i] = outcome  # "passed", "failed", or "unchecked": nothing recognised, never a pass
            reason.iloc[i] = text
        out["checks"], out["check_reason"] = verdict, reason
        out.attrs = dict(out.attrs)
        out.attrs["checks"] = {"field": self.field, "names": [c.name for c in self.checks]}
        return out


def _declared_length(schema: type[BaseModel], name: str) -> float:
    """How long a text field may be: its max_length, or unlimited (so a description beats a 60-character headline)."""
    limits = [getattr(m, "max_length", None) for m in schema.model_fields[name].metadata]
    known = [n for n in limits if isinstance(n, int)]
    return min(known) if known else float("inf")


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


def endpoint_identity(client: openai.OpenAI) -> str:
    """The backend and base URL a client talks to: part of every cache and checkpoint key."""
    try:
        from marketlab import llm

        backend = llm.backend().name
    except Exception:  # a misconfigured environment still lets a learner pass their own client
        backend = "custom"
    return f"{backend} {str(client.base_url).rstrip('/')}"


def _with_instruction(messages: list[dict[str, Any]], instruction: str) -> list[dict[str, Any]]:
    """The messages with the schema instruction at the end of the system message (one is added if none).

    The instruction is the same for every row, so it belongs with the other shared text, before the
    row's data: a server that reuses the start of an earlier prompt (the built-in model does, block by
    block) then reads it once for the whole batch instead of once per row.
    """
    out = [dict(m) for m in messages]
    if out and out[0].get("role") == "system" and isinstance(out[0].get("content"), str):
        out[0]["content"] = f"{out[0]['content']}\n\n{instruction}"
    else:
        out.insert(0, {"role": "system", "content": instruction})
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
                 client: openai.OpenAI, model: str, brief: Any, rules: Rules | None, settings: RunSettings) -> None:
        inputs.check_frame(df, [*settings.required_columns, *settings.include])
        self.json_schema = inputs.check_schema(schema)
        inputs.check_client(client, model)
        self.takes_brief = inputs.builder_takes_brief(builder)
        if self.takes_brief and brief is None:
            raise WorkflowInputError(
                "build_messages takes (brief, record), but no brief was given.",
                "Pass brief=... (e.g. marketlab.artifacts.load_brief()), or write build_messages(record).")
        clash = [c for c in settings.include if c in schema.model_fields]
        if clash:
            raise WorkflowInputError(f"include= names column(s) {clash} that are also fields of the schema.",
                                     "Leave them out of include=, or rename the schema fields.")
        self.df, self.builder, self.schema, self.model, self.brief = df, builder, schema, model, brief
        self.rules, self.settings, self.retry = rules, settings, settings.retries
        self.include = list(settings.include)
        self.instruction = schema_instruction(self.json_schema) if settings.describe_schema else None
        # What decides the reply besides the messages: sent with each request and part of its cache key.
        self.params: dict[str, Any] = {"max_tokens": settings.max_tokens, "temperature": settings.temperature,
                                       "seed": settings.seed}
        self.response_format = {"type": "json_schema",
                                "json_schema": {"name": schema.__name__, "schema": self.json_schema, "strict": True}}
        # The runner retries; the SDK must not retry as well, or attempts multiply.
        timeout = openai.Timeout(settings.timeouts.read, connect=settings.timeouts.connect)
        self.api = client.with_options(max_retries=0, timeout=timeout)
        self.redact = Redactor([getattr(client, "api_key", None)])
        self.limiter = RateLimiter(settings.limits.rpm)
        self.budget = BudgetMeter(model, settings.max_tokens, settings.budget)
        if settings.budget.cost_usd is not None and self.budget.cost(1000, 1000) is None:
            raise WorkflowInputError(
                f"A cost budget is set, but marketlab has no price for the model '{model}'.",
                "Pass prices=(input_usd, output_usd) per million tokens, or use token_budget= instead.")
        self.endpoint = endpoint_identity(client)
        self.fingerprint = _fingerprint(self.endpoint, model, self.json_schema, self.params, _rules_identity(rules),
                                        settings.repair, settings.describe_schema)
        storage = settings.storage
        self.cache = None
        if storage.cache:
            self.cache = ResponseCache(None if storage.cache is True else storage.cache, storage.cache_size_mb)
        self.checkpoint = None
        if storage.checkpoint:
            path = default_path(_fingerprint(self.fingerprint, _frame_hash(df))) if storage.checkpoint is True \
                else storage.checkpoint
            self.checkpoint = Checkpoint(path)
        self.aborted: str | None = None
        self.stopped = False
        self.notes: list[str] = []

    # -- one request, with retries (worker thread) ------------------------------------------
    def _key(self, messages: list[dict[str, Any]]) -> str:
        return request_key(self.endpoint, self.model, messages, self.json_schema, self.params)

    def _fix(self, kind: str) -> str:
        """The fix sentence for a failure kind, with this run's own time limit and max_tokens."""
        return _fix(kind, self.settings.timeouts.read, self.params.get("max_tokens"))

    def _request(self, messages: list[dict[str, Any]], reserved: Usage) -> _Sent:
        """Send one request (its budget already reserved) and settle it; raises _CallError."""
        calls, waited, used = 0, 0.0, Usage()
        try:
            while True:
                calls += 1
                waited += self.limiter.acquire()
                sent_at = time.perf_counter()
                try:
                    raw = self.api.chat.completions.with_raw_response.create(
                        model=self.model, messages=messages, response_format=self.response_format,
                        max_tokens=self.params["max_tokens"], temperature=self.params["temperature"],
                        **({"seed": self.params["seed"]} if self.params["seed"] is not None else {}))
                    reply = self._read_payload(raw.http_response.json())
                except (openai.OpenAIError, ValueError) as err:
                    waited += time.perf_counter() - sent_at  # a failed attempt is time lost, like a wait
                    failure = classify(err) or CallFailure(
                        "server_error", "the model service sent something that is not an API reply", True)
                    waited += self._after_failure(failure, calls)
                    continue
                prompt, completion = reply.prompt_tokens, reply.completion_tokens
                used = Usage(prompt + completion, self.budget.cost(prompt, completion) or 0.0)
                if self.cache is not None:
                    stored = reply.to_json()
                    stored["content"] = self.redact.value(stored["content"])
                    self.cache.put(self._key(messages), stored)
                return _Sent(reply, False, calls, waited)
        except _CallError as err:
            err.calls, err.waited = calls, waited + err.waited
            raise
        finally:
            if self.budget.limited:
                self.budget.settle(reserved, used)

    def _after_failure(self, failure: CallFailure, calls: int) -> float:
        """Wait before the next attempt (returns the seconds), or raise _CallError when the row gives up."""
        retry_after = failure.retry_after
        too_long = retry_after is not None and retry_after > self.retry.max_retry_after
        if failure.kind == "rate_limit":
            # The limit is shared: every worker pauses before its next request, even when this row gives up.
            # This worker's own wait happens in limiter.acquire() before its next attempt.
            self.limiter.hold(min(self.retry.delay(calls, retry_after), self.retry.max_retry_after))
        if too_long:
            raise _CallError(failure, calls, 0.0, f"; it asked to wait {retry_after:g} s, longer than the "
                                                  f"{self.retry.max_retry_after:g} s allowed")
        if not failure.retryable or calls >= self.retry.max_attempts:
            raise _CallError(failure, calls, 0.0)
        if failure.kind == "rate_limit":
            return 0.0
        pause = self.retry.delay(calls, retry_after)
        time.sleep(pause)
        return pause

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
    def _process(self, messages: list[dict[str, Any]], record: dict[str, Any], hit: dict[str, Any] | None,
                 reserved: Usage) -> RowResult:
        """Request, validate, repair once."""
        if self.aborted:  # queued before an earlier row showed that every request fails
            if self.budget.limited:
                self.budget.settle(reserved, Usage())
            return self._not_run_after_abort()
        started = time.perf_counter()
        result = RowResult(None, "failed")
        sources: list[bool] = []
        attempt = messages
        first: Verdict | None = None
        try:
            for stage in ("first", "repair"):
                try:
                    sent = self._send(attempt, hit if stage == "first" else None, reserved, stage == "repair")
                except _CallError as err:
                    result.calls += err.calls
                    result.retries += err.calls - 1
                    result.wait_s += err.waited
                    result.error_kind, result.fatal = err.failure.kind, err.failure.fatal
                    tries = f" on all {err.calls} tries" if err.calls > 1 else ""
                    result.error = f"{err.failure.detail}{tries}{err.note}.{self._fix(err.failure.kind)}"
                    if first is not None:
                        result.error = f"The reply needed a repair ({first.text()}), then {result.error}"
                    break
                except _NoBudget as err:
                    result.error_kind = "budget"
                    result.error = (f"The reply could not be used ({first.text() if first else ''}); a repair "
                                    f"attempt needs up to {err.need.tokens:,} tokens and only {self.budget.left()} "
                                    f"of the budget ({self.budget.describe()}) is left.")
                    break
                sources.append(sent.cached)
                reply = sent.reply
                result.calls += sent.calls
                result.retries += max(0, sent.calls - 1)
                result.wait_s += sent.waited
                if not sent.cached:  # tokens and cost are what this run spent: cache hits are free
                    result.prompt_tokens += reply.prompt_tokens
                    result.completion_tokens += reply.completion_tokens
                    self.budget.learn(attempt, reply.prompt_tokens)
                verdict = read_reply(reply.content, reply.finish_reason, self.schema, self.rules, record,
                                     reply.refusal, self.params["max_tokens"])
                if verdict.ok and verdict.parsed is not None:
                    result.status = "ok" if stage == "first" else "repaired"
                    result.fields = verdict.parsed.model_dump(mode="json")
                    break
                if stage == "first" and self.settings.repair:
                    first = verdict
                    attempt = repair_messages(messages, reply.content, verdict)
                    continue
                result.error_kind = verdict.kind or "schema"
                again = " after one repair attempt" if first is not None else ""
                result.error = f"Unusable reply{again}: {verdict.text()}.{self._fix(result.error_kind)}"
                break
        except Exception as err:  # a bug must cost one row, not the run
            result.status, result.error_kind = "failed", "rejected"
            result.error = f"Unexpected {type(err).__name__} while calling the model: {str(err)[:200]}"
        result.source = "cache" if sources and all(sources) else ("model" if sources or result.calls else "none")
        result.prompt_tokens, result.completion_tokens = int(result.prompt_tokens), int(result.completion_tokens)
        result.cost_usd = self.budget.cost(result.prompt_tokens, result.completion_tokens)
        result.latency_s = round(time.perf_counter() - started, 4)
        result.wait_s = round(result.wait_s, 4)
        if result.fatal and not self.aborted:
            self.aborted = result.error  # seen at once by rows queued behind this one
        return result

    def _send(self, messages: list[dict[str, Any]], hit: dict[str, Any] | None, reserved: Usage,
              repair: bool) -> _Sent:
        """The reply from the cache, or from the model once the budget allows the call."""
        if repair and self.cache is not None:
            hit = self.cache.get(self._key(messages))
        if hit is not None:
            if not repair and self.budget.limited:
                self.budget.settle(reserved, Usage())
            return _Sent(_Reply(**hit), True, 0, 0.0)
        if not repair:
            return self._request(messages, reserved)
        need = Usage()
        if self.budget.limited:
            need = self.budget.estimate(messages)
            if not self.budget.reserve_repair(need):
                raise _NoBudget(need)
        return self._request(messages, need)

    # -- the main loop (main thread) --------------------------------------------------------
    def execute(self) -> pd.DataFrame:
        """Run every row and assemble the output table."""
        started = time.perf_counter()
        columns = list(self.df.columns)
        records = self.df.to_dict("records")
        results: list[RowResult | None] = [None] * len(records)
        restored = self.checkpoint.load() if self.checkpoint else {}
        bar = _progress_bar(len(records), self.settings.progress)
        workers = self.settings.limits.workers
        # Without a budget, keep a row queued behind each busy worker so none waits for the main thread.
        # With one, admit no more than can run: a reservation must belong to a row that is running.
        ahead = workers if self.budget.limited else 2 * workers
        pending: dict[Future, tuple[int, str]] = {}
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="marketlab-workflow")

        def record_result(position: int, result: RowResult, key: str | None = None) -> None:
            self._clean(result)
            results[position] = result
            if key and self.checkpoint and self._finished(result):
                self.checkpoint.append(key, result.to_json())
            bar.update(1)

        def drain() -> None:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in done:
                position, key = pending.pop(future)
                result = future.result()  # a KeyboardInterrupt inside a worker surfaces here
                if result.fatal and not self.aborted:
                    self.aborted = result.error
                if result.error_kind == "budget" and not self.stopped:
                    self.stopped = True
                    self.notes.append(f"Stopped at the budget ({self.budget.describe()}) at row {position + 1}: "
                                      "rows not yet sent were skipped.")
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
                if old is not None and not (self.settings.storage.retry_failed and old.get("status") == "failed"):
                    result = RowResult.from_json(old)
                    result.source = "checkpoint"
                    spent = result.prompt_tokens + result.completion_tokens
                    self.budget.add_restored(Usage(spent, result.cost_usd or 0.0))
                    record_result(position, result)
                    continue
                hit = self.cache.get(self._key(messages)) if self.cache is not None else None
                if hit is not None and self.settings.storage.retry_failed and not self._usable(hit, record, messages):
                    hit = None  # a cached reply that broke a rule is asked for again, not served again
                need = Usage() if hit is not None or not self.budget.limited else self.budget.estimate(messages)
                while True:
                    while len(pending) >= ahead:
                        drain()
                    if self.aborted or self.stopped:
                        break
                    if hit is not None or not self.budget.limited or self.budget.try_reserve(need):
                        break
                    if not pending:  # nothing in flight and still no room: stop cleanly
                        self.stopped = True
                        self.notes.append(f"Stopped at the budget ({self.budget.describe()}) before row "
                                          f"{position + 1}: its first request could need {need.tokens:,} tokens "
                                          f"and {self.budget.left()} are left; {len(records) - position} row(s) "
                                          "were not sent.")
                        break
                    drain()
                if self.aborted:  # checked before any reservation was made for this row
                    record_result(position, self._not_run_after_abort())
                    continue
                if self.stopped:
                    record_result(position, self._skipped())
                    continue
                future = executor.submit(self._process, messages, record, hit, need)
                pending[future] = (position, key)
            while pending:
                drain()
        except KeyboardInterrupt:
            # Rows already handed out get a short grace period to finish and reach the checkpoint;
            # whatever is still running after it is redone on resume.
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
        self._finish_notes(results)
        self._close()
        return self._table(results, started)

    def _finish_notes(self, results: list[RowResult | None]) -> None:
        """Say why the run stopped, what was restored, and whether the checkpoint stays."""
        if self.aborted:
            self.notes.append(f"The run stopped sending requests: {self.aborted}")
        if any(r and r.source == "checkpoint" for r in results):
            spent = f"; the budget counts the {self.budget.restored.tokens:,} tokens they used" \
                if self.budget.limited else ""
            self.notes.append(f"Resumed from the checkpoint {self.checkpoint.path if self.checkpoint else ''}{spent}.")
        if not self.checkpoint:
            return
        left = sum(1 for r in results if r is not None and not self._finished(r) and r.error_kind != "input")
        if self.stopped or any(r is not None and r.error_kind == "budget" for r in results):
            self.notes.append(f"Checkpoint kept at {self.checkpoint.path}: run again with a larger budget to "
                              f"finish the {left} row(s) left; finished rows are not sent again.")
        else:
            self.checkpoint.remove()

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

    def _usable(self, hit: dict[str, Any], record: dict[str, Any], messages: list[dict[str, Any]]) -> bool:
        """True when a cached reply gives a usable row: valid as it stands, or after a repair the cache also holds."""
        try:
            reply = _Reply(**hit)
            verdict = read_reply(reply.content, reply.finish_reason, self.schema, self.rules, record, reply.refusal,
                                 self.params["max_tokens"])
            if verdict.ok or not self.settings.repair or self.cache is None:
                return verdict.ok
            repaired = self.cache.get(self._key(repair_messages(messages, reply.content, verdict)))
            if repaired is None:
                return True  # the repair request goes to the model as usual
            again = _Reply(**repaired)
            return read_reply(again.content, again.finish_reason, self.schema, self.rules, record, again.refusal,
                              self.params["max_tokens"]).ok
        except Exception:  # an old or damaged cache entry: ask the model again
            return False

    def _skipped(self) -> RowResult:
        return RowResult(None, "skipped_budget", f"Not sent: the budget ({self.budget.describe()}) cannot cover it; "
                                                 f"{self.budget.left()} left.", "budget")

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
        if self.checkpoint is not None:
            self.checkpoint.close()

    def _table(self, results: list[RowResult | None], started: float) -> pd.DataFrame:
        fields = list(self.schema.model_fields)
        included = self.df[self.include].to_dict("records") if self.include else None
        rows = []
        for position, result in enumerate(results):
            assert result is not None, "every row has a result"
            row: dict[str, Any] = dict(included[position]) if included else {}
            values = result.fields or {}
            row.update({name: values.get(name) for name in fields})
            row.update(result.meta())
            rows.append(row)
        out = pd.DataFrame(rows, index=self.df.index)
        out.attrs["workflow"] = {"wall_s": round(time.perf_counter() - started, 3), "model": self.model,
                                 "budget": None if not self.budget.limited else self.budget.describe(),
                                 "read_timeout_s": self.settings.timeouts.read, "notes": list(self.notes)}
        return out


def _fix(kind: str, read_timeout_s: float | None = None, max_tokens: int | None = None) -> str:
    if kind == "timeout" and read_timeout_s:
        # Numbers from this run, not an example: the advice names what to change and to what.
        fewer = f", or lower max_tokens= (now {max_tokens})" if max_tokens else ""
        return (f" Fix: give the model more time (request_timeout={int(read_timeout_s * 2)}, "
                f"now {read_timeout_s:g}){fewer}.")
    return {
        "rate_limit": " Fix: lower workers= or set rpm=, or run again later; finished rows are kept.",
        "server_error": " Fix: run again later; finished rows are kept.",
        "timeout": " Fix: give the model more time (request_timeout=, in seconds) or lower max_tokens=.",
        "connection": " Fix: check the network, or run `marketlab doctor`.",
        "auth": " Fix: check OPENAI_API_KEY (or run `marketlab doctor`).",
        "rejected": " Fix: check the model name and the messages.",
        "truncated": " Fix: raise max_tokens=, or ask for shorter fields in the brief and schema.",
        "invalid_json": " Fix: make the brief ask for the JSON fields plainly; keep fields few and simple.",
        "schema": " Fix: loosen the schema or say its limits in the brief.",
        "rules": " Fix: say the limit in the brief (e.g. the word count), or loosen the rule.",
        "not_sent": " Fix: run the same command again: it sends these rows in a new batch.",
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
