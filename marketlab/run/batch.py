"""`--batch-api`: a workflow run sent through the provider's Batch API, resumable, at the batch price.

Round by round:
1. the workflow runs against a ReplayEndpoint (replay.py); every request it cannot answer yet is
   collected: in round 1 each row's first request, in round 2 the repair requests;
2. they are uploaded as JSONL (`client.files.create(purpose="batch")`) and sent as batches of at
   most 50,000 requests (`client.batches.create(endpoint="/v1/chat/completions",
   completion_window="24h")`); each batch id is written at once to the state file next to the
   output, so a run that is killed picks its batches up again instead of sending them twice;
3. the batches are polled until they end, and their answers are joined back by custom_id.
When a round collects nothing new, the last pass is the result: run_batch's own table.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import openai
import pandas as pd
from pydantic import BaseModel, ValidationError

from marketlab.workflow.budget import BudgetMeter, Usage
from marketlab.workflow.retry import NOT_ANSWERED_CODE, OVER_BUDGET_CODE, classify
from marketlab.workflow.settings import RunSettings

from .exitcodes import RunFailedError, RunInputError
from .replay import Answer, ReplayEndpoint

ENDPOINT: Final = "/v1/chat/completions"
WINDOW: Final = "24h"
MAX_ROUNDS = 4  # first replies, repairs, and room for a cache that forgot a reply between two passes
ENDED = ("completed", "failed", "expired", "cancelled")
REUSABLE = ("validating", "in_progress", "finalizing", "completed")
POLL_START_S = 1.0
POLL_ERRORS_ALLOWED = 5
# Settings of the passes against the replay endpoint: nothing to wait for, retry or checkpoint there.
REPLAY_SETTINGS = {"progress": False, "show_summary": False, "checkpoint": False, "max_attempts": 1, "rpm": None}


@dataclass(frozen=True)
class BatchOptions:
    """How --batch-api polls and splits: the longest pause between polls, and the limits of one batch."""

    poll_max_s: float = 30.0
    max_requests: int = 50_000
    max_bytes: int = 190 * 2**20  # under OpenAI's 200 MB per input file


class SentBatch(BaseModel):
    """One batch this run sent, as kept in the state file."""

    id: str
    digest: str  # of the custom_ids it holds: the same requests give the same digest
    requests: int
    round: int
    sent_at: str


class BatchState(BaseModel):
    """The state file next to the output: the batches sent so far."""

    version: int = 1
    batches: list[SentBatch] = []

    @classmethod
    def load(cls, path: Path) -> BatchState:
        """The state in `path` (empty when there is none)."""
        if not path.exists():
            return cls()
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except (ValidationError, ValueError, UnicodeDecodeError):
            raise RunInputError(f"The batch state file {path} is damaged, so marketlab cannot tell which batches it "
                                "sent before.", f"Delete {path.name} to send the rows again as new batches (a batch "
                                "sent earlier keeps running at the provider until it ends).") from None

    def save(self, path: Path) -> None:
        """Write the state; the file is replaced whole, so a kill leaves the old one or the new one."""
        partial = path.with_name(path.name + ".partial")
        partial.write_text(self.model_dump_json(indent=2), encoding="utf-8")
        partial.replace(path)

    def find(self, digest: str) -> SentBatch | None:
        """The latest batch sent with exactly these requests."""
        return next((b for b in reversed(self.batches) if b.digest == digest), None)


@dataclass
class BatchRun:
    """What the Batch API part of a run did."""

    sent: list[str] = field(default_factory=list)  # batch ids sent by this process
    resumed: list[str] = field(default_factory=list)  # batch ids sent earlier and picked up
    requests: int = 0
    rounds: int = 0
    notes: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    wall_s: float = 0.0
    passes_s: float = 0.0  # of wall_s: the workflow's passes against the answers (run_batch itself)

    @property
    def batch_ids(self) -> list[str]:
        """Every batch whose answers are in the results."""
        return [*self.resumed, *self.sent]


def digest(ids: list[str]) -> str:
    """The identity of a set of requests."""
    return hashlib.sha256("\n".join(sorted(ids)).encode("utf-8")).hexdigest()[:32]


def jsonl(requests: dict[str, dict[str, Any]]) -> bytes:
    """The Batch API input file for these requests (custom_id -> chat completions body)."""
    return "".join(json.dumps({"custom_id": cid, "method": "POST", "url": ENDPOINT, "body": body},
                              ensure_ascii=False) + "\n" for cid, body in requests.items()).encode("utf-8")


def chunks(requests: dict[str, dict[str, Any]], options: BatchOptions) -> list[dict[str, dict[str, Any]]]:
    """The requests split into batches within the provider's limits (the same split for the same requests)."""
    out: list[dict[str, dict[str, Any]]] = [{}]
    size = 0
    for cid in sorted(requests):
        line = len(jsonl({cid: requests[cid]}))
        if out[-1] and (len(out[-1]) >= options.max_requests or size + line > options.max_bytes):
            out.append({})
            size = 0
        out[-1][cid] = requests[cid]
        size += line
    return [chunk for chunk in out if chunk]


def read_answers(text: str) -> dict[str, Answer]:
    """The answers in a batch output or error file, by custom_id."""
    answers: dict[str, Answer] = {}
    for raw in text.splitlines():
        if not raw.strip():
            continue
        item = json.loads(raw)
        response = item.get("response")
        if isinstance(response, dict) and isinstance(response.get("body"), dict):
            answers[item["custom_id"]] = Answer(int(response.get("status_code") or 500), response["body"])
        else:
            error = item.get("error") or {}
            code = str(error.get("code") or "batch_error")
            message = str(error.get("message") or "The batch did not answer it.")
            if code in NEVER_RUN or not error:
                answers[item["custom_id"]] = unanswered(code, message)
            else:  # the provider refused the request itself: sending it again would fail the same way
                answers[item["custom_id"]] = Answer(400, {"error": {"message": message, "type": "invalid_request_error",
                                                                    "param": None, "code": code}})
    return answers


NEVER_RUN = ("batch_expired", "batch_cancelled", "batch_error")  # error codes of requests the batch never ran


def unanswered(code: str, message: str) -> Answer:
    """The answer of a request the batch did not run (expired, cancelled, lost): a row never answered.

    It is not a server error and not worth an immediate retry: the runner names it `not_sent`
    (marketlab.workflow.retry.NOT_ANSWERED_CODE) and the outcome counts it apart from failed rows.
    """
    why = {"batch_expired": "the batch expired before the provider answered it (the 24-hour window ended)",
           "batch_cancelled": "the batch was cancelled before the provider answered it"}.get(code, message)
    return Answer(400, {"error": {"message": f"Never answered: {why}.".replace("..", "."),
                                  "type": "batch_not_answered", "param": None, "code": NOT_ANSWERED_CODE}})


class BudgetGate:
    """The run's budget, checked before a batch is sent: its worst case (every reply at max_tokens) must fit."""

    def __init__(self, settings: RunSettings, model: str) -> None:
        self.settings = settings
        self.meter = BudgetMeter(model, settings.max_tokens, settings.budget)

    def worst_case(self, requests: dict[str, dict[str, Any]]) -> Usage:
        """The most these requests could use."""
        total = Usage()
        for body in requests.values():
            total = total + self.meter.estimate(body.get("messages") or [])
        return total

    def spent(self, answers: dict[str, Answer]) -> Usage:
        """What the answers so far used."""
        total = Usage()
        for answer in answers.values():
            usage = answer.body.get("usage") if answer.ok else None
            if isinstance(usage, dict):
                prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
                total = total + Usage(prompt + completion, self.meter.cost(prompt, completion) or 0.0)
        return total

    def over(self, need: Usage) -> str | None:
        """How `need` breaks the budget, in words; None when it fits."""
        budget = self.settings.budget
        if budget.tokens is not None and need.tokens > budget.tokens:
            return f"up to {need.tokens:,} tokens, and the budget is {budget.tokens:,}"
        if budget.cost_usd is not None and need.cost_usd > budget.cost_usd + 1e-12:
            return f"up to ${need.cost_usd:,.4f}, and the budget is ${budget.cost_usd:,.4f}"
        return None


class Provider:
    """The provider's Batch API through the openai SDK: upload, send, poll, download."""

    def __init__(self, client: openai.OpenAI, options: BatchOptions, echo: bool) -> None:
        self.api = client.with_options(max_retries=3)
        self.options, self.echo = options, echo

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except openai.NotFoundError as err:
            if what == "upload":
                raise RunInputError(f"This model service has no Batch API ({what} answered HTTP 404).",
                                    "Run without --batch-api, or point OPENAI_BASE_URL at a service that has "
                                    "/v1/files and /v1/batches.") from None
            raise RunFailedError(f"The Batch API could not {what}: {_detail(err)}.", "Run the command again; "
                                 "if it keeps failing, run `marketlab doctor`.") from None
        except openai.OpenAIError as err:
            raise RunFailedError(f"The Batch API could not {what}: {_detail(err)}.",
                                 "Run the same command again: batches already sent are picked up, not sent again; "
                                 "`marketlab doctor` checks the key and the connection.") from None

    def send(self, requests: dict[str, dict[str, Any]], key: str, round_: int) -> Any:
        """Upload the requests and start a batch of them."""
        data = jsonl(requests)
        upload = self._call("upload", lambda: self.api.with_options(timeout=600).files.create(
            file=(f"marketlab-{key}.jsonl", data, "application/jsonl"), purpose="batch"))
        return self._call("start the batch", lambda: self.api.batches.create(
            input_file_id=upload.id, endpoint=ENDPOINT, completion_window=WINDOW,
            metadata={"marketlab_digest": key, "marketlab_round": str(round_)}))

    def find(self, batch_id: str) -> Any | None:
        """The batch, or None when the provider does not know it (any more)."""
        try:
            return self.api.batches.retrieve(batch_id)
        except openai.NotFoundError:
            return None
        except openai.OpenAIError as err:
            raise RunFailedError(f"The Batch API could not look up batch {batch_id}: {_detail(err)}.",
                                 "Run the same command again to pick it up.") from None

    def wait(self, batches: list[Any]) -> list[Any]:
        """Poll every batch until it ends, with a progress bar over their requests."""
        total = sum(_counts(b)[0] for b in batches) or None
        bar = _bar(total, self.echo)
        pause, errors = POLL_START_S, 0
        try:
            while True:
                done = sum(_counts(b)[1] for b in batches)
                bar.update(max(0, done - bar.n))
                if all(b.status in ENDED for b in batches):
                    return batches
                time.sleep(pause)
                pause = min(pause * 1.5, self.options.poll_max_s)
                try:
                    batches = [b if b.status in ENDED else self.api.batches.retrieve(b.id) for b in batches]
                    errors = 0
                except openai.OpenAIError as err:
                    errors += 1
                    if errors >= POLL_ERRORS_ALLOWED:
                        raise RunFailedError(f"The Batch API did not answer {errors} polls in a row ({_detail(err)}).",
                                             "The batches keep running at the provider: run the same command "
                                             "again later to pick up their results.") from None
                if total is None:
                    total = sum(_counts(b)[0] for b in batches) or None
                    bar.total = total
        finally:
            bar.close()

    def answers(self, batch: Any) -> dict[str, Answer]:
        """The answers of an ended batch, from its output and error files."""
        found: dict[str, Answer] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                content = self._call("download the results", functools.partial(self.api.files.content, file_id))
                found.update(read_answers(content.text))
        return found


def run_through_batches(run_pass: Callable[[openai.OpenAI], pd.DataFrame], client: openai.OpenAI, state_path: Path,
                        options: BatchOptions, gate: BudgetGate | None = None,
                        echo: bool = True) -> tuple[pd.DataFrame, BatchRun]:
    """Run the workflow's requests through the Batch API, round by round, and return run_batch's table."""
    started = time.perf_counter()
    say = (lambda text: print(text, flush=True)) if echo else (lambda text: None)
    provider = Provider(client, options, echo)
    state = BatchState.load(state_path)
    answers: dict[str, Answer] = {}
    report = BatchRun()
    base_url = str(client.base_url)
    for round_ in range(1, MAX_ROUNDS + 1):
        replay = ReplayEndpoint(answers)
        pass_started = time.perf_counter()
        table = run_pass(replay.client(base_url))
        report.passes_s = round(report.passes_s + time.perf_counter() - pass_started, 3)
        pending = {cid: body for cid, body in replay.deferred.items() if cid not in answers}
        if not pending:
            report.wall_s = round(time.perf_counter() - started, 3)
            if gate is not None:
                report.usage = gate.spent(answers)
            state_path.unlink(missing_ok=True)
            return table, report
        report.rounds = round_
        what = "first replies" if round_ == 1 else "repairs of replies that could not be used"
        if gate is not None and gate.settings.budget.limited:
            need = gate.spent(answers) + gate.worst_case(pending)
            over = gate.over(need)
            if over and round_ == 1:
                raise RunInputError(f"The batch of {len(pending):,} requests could use {over} (the worst case: every "
                                    "reply as long as max_tokens allows). Nothing was sent.",
                                    "Raise the budget (--param token_budget=... or cost_budget_usd=...), lower "
                                    "max_tokens, or run fewer rows.")
            if over:
                for cid in pending:
                    answers[cid] = Answer(400, {"error": {"message": "Not sent: over the run's budget.",
                                                          "type": "invalid_request_error", "param": None,
                                                          "code": OVER_BUDGET_CODE}})
                report.notes.append(f"{len(pending)} {what} were not sent: together they could use {over}.")
                continue
        report.requests += len(pending)
        batches, members = [], []
        for chunk in chunks(pending, options):
            key = digest(list(chunk))
            batch = _resume(provider, state.find(key), say, report)
            if batch is None:
                batch = provider.send(chunk, key, round_)
                state.batches.append(SentBatch(id=batch.id, digest=key, requests=len(chunk), round=round_,
                                               sent_at=datetime.now(UTC).isoformat(timespec="seconds")))
                state.save(state_path)
                report.sent.append(batch.id)
                say(f"Sent batch {batch.id} ({len(chunk):,} requests: {what}). Its id is saved in "
                    f"{state_path.name}: if this run is stopped, the same command picks the batch up again.")
            batches.append(batch)
            members.append(list(chunk))
        for batch, asked in zip(provider.wait(batches), members):
            found = provider.answers(batch)
            completed, failed = (batch.request_counts.completed, batch.request_counts.failed) \
                if batch.request_counts else (len(found), 0)
            say(f"Batch {batch.id}: {batch.status}, {completed:,} answered, {failed:,} failed.")
            if batch.status == "failed":
                problems = "; ".join(f"{e.message}" for e in (batch.errors.data or [])[:3]) if batch.errors else ""
                raise RunFailedError(f"The provider refused batch {batch.id}: {problems or 'no reason given'}.",
                                     f"Delete {state_path.name} and run again; if it fails again, run without "
                                     "--batch-api.")
            if batch.status != "completed":
                report.notes.append(f"Batch {batch.id} {batch.status}: the requests it did not answer were never "
                                    "answered; the same command sends them again in a new batch.")
            answers.update(found)
            for cid in asked:
                if cid not in answers:
                    answers[cid] = unanswered(f"batch_{batch.status}", f"batch {batch.id} ended ({batch.status}) "
                                              "without an answer to this request")
    raise RunFailedError(f"After {MAX_ROUNDS} batches the workflow still asked for new requests: its messages "
                         "change from one pass to the next (a time stamp or a random choice in build_messages?), "
                         "so no batch can answer them.",
                         "Make build_messages depend only on the row, or run without --batch-api.")


def _resume(provider: Provider, earlier: SentBatch | None, say: Callable[..., None], report: BatchRun) -> Any | None:
    """The batch sent earlier with the same requests, if the provider still has it in a state worth waiting for."""
    if earlier is None:
        return None
    batch = provider.find(earlier.id)
    if batch is None or batch.status not in REUSABLE:
        why = "the provider no longer knows it" if batch is None else f"it ended as {batch.status}"
        report.notes.append(f"Batch {earlier.id}, sent {earlier.sent_at}, was sent again: {why}.")
        return None
    report.resumed.append(batch.id)
    say(f"Picking up batch {batch.id} (sent {earlier.sent_at}, {earlier.requests:,} requests, now {batch.status}) "
        "instead of sending it again.")
    return batch


def _counts(batch: Any) -> tuple[int, int]:
    counts = batch.request_counts
    if counts is None:
        return 0, 0
    return int(counts.total or 0), int((counts.completed or 0) + (counts.failed or 0))


def _detail(err: openai.OpenAIError) -> str:
    failure = classify(err)
    return failure.detail if failure else type(err).__name__


def _bar(total: int | None, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="batch", unit="request", disable=not enabled)


__all__ = ["BatchOptions", "BatchRun", "BatchState", "BudgetGate", "Provider", "REPLAY_SETTINGS", "SentBatch",
           "chunks", "digest", "jsonl", "read_answers", "run_through_batches"]
