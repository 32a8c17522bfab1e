"""The one door to llama-cpp-python: everything marketlab asks of llama.cpp, and nothing more.

The engine (engine.py) runs the built-in model through llama.cpp's own C interface, several
sequences in one context, which llama-cpp-python exposes as thin ctypes bindings that change from
release to release. This module is the only one in marketlab that imports `llama_cpp`; everything
the engine needs is here, typed and named for what it does, and pointers and ctypes stay inside:

- `Model`: load a GGUF file; tokenize; a token's piece of text; end of generation; the chat template.
- `ChatTemplate`: the model's chat template rendered for a list of messages (the prompt text, whether
  tokenising must add BOS, the stop strings).
- `Context`: one llama.cpp context with a KV stream per sequence; `decode` a `Batch`; remove a
  sequence's memory and read its first and last positions; a sequence's state as bytes and back.
- `Batch`: tokens you add (token, position, sequence, whether its logits are wanted).
- `SamplerChain`: the sampler chain of one request, built step by step (penalties, grammar, greedy
  or top-k / typical / top-p / min-p / temperature / seeded distribution), sampled from a context.
- `Grammar`: GBNF text, built from GBNF, plain JSON or a JSON schema.

tests/test_llama_contract.py checks each of these against the installed llama-cpp-python and the
real model. To try a newer llama-cpp-python: change the pin in pyproject.toml and environment.yml,
run `pytest tests/test_llama_contract.py`.

`llama_cpp` is imported on first use (importing it loads the native library), through the package's
top-level names, so a stand-in `llama_cpp` earlier on the path (tests/support/faulty_engine.py, a
trial engine under `selftest --engine-path`) takes effect here too.
"""

from __future__ import annotations

import ctypes
import json
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# llama.cpp's log levels (ggml_log_level): errors are shown, loading chatter is not.
_LOG_NONE, _LOG_ERROR, _LOG_CONT = 0, 3, 5
_DECODE_STATUS = {1: "no room in the KV cache for this batch", 2: "aborted", -1: "invalid batch"}

_lock = threading.Lock()
_library: Any = None
_log_callback: Any = None  # kept alive: llama.cpp holds a pointer to it


class LlamaError(RuntimeError):
    """A llama.cpp call failed (a model that does not load, a context that cannot be made, a decode that
    returned an error). The engine turns it into a server error for the request that met it."""


class GrammarError(ValueError):
    """A response format that cannot be turned into a grammar llama.cpp accepts."""


def library() -> Any:
    """The `llama_cpp` module, imported once, with llama.cpp's log cut to errors and its backend started."""
    global _library
    with _lock:
        if _library is None:
            import llama_cpp

            _quiet(llama_cpp)
            llama_cpp.llama_backend_init()
            _library = llama_cpp
    return _library


def version() -> str:
    """The installed llama-cpp-python's version."""
    return str(library().__version__)


def location() -> Path:
    """The folder of the `llama_cpp` package in use (the self-test prints it)."""
    return Path(library().__file__).parent


def _quiet(ll: Any) -> None:
    """Show llama.cpp's errors on stderr and nothing else (no loading chatter in the server's log)."""
    global _log_callback
    shown = [False]

    def log(level: int, text: bytes, user_data: Any) -> None:
        show = shown[0] if level == _LOG_CONT else level in (_LOG_NONE, _LOG_ERROR)
        shown[0] = show
        if show:
            sys.stderr.write(text.decode("utf-8", "replace"))
            sys.stderr.flush()

    _log_callback = ll.llama_log_callback(log)
    ll.llama_log_set(_log_callback, ctypes.c_void_p(0))


# -- the model ----------------------------------------------------------------------------------

class Model:
    """A GGUF model loaded with llama.cpp's default parameters, and its vocabulary."""

    def __init__(self, path: Path | str) -> None:
        ll = self._ll = library()
        path = Path(path)
        if not path.is_file():
            raise LlamaError(f"No model file at {path}")
        self._ptr = ll.llama_model_load_from_file(str(path).encode("utf-8"), ll.llama_model_default_params())
        if not self._ptr:
            raise LlamaError(f"llama.cpp could not load the model file {path}")
        self._vocab = ll.llama_model_get_vocab(self._ptr)
        self.n_vocab: int = ll.llama_vocab_n_tokens(self._vocab)
        self.n_ctx_train: int = ll.llama_model_n_ctx_train(self._ptr)
        self.bos: int = ll.llama_vocab_bos(self._vocab)  # -1 when the model has none
        self.eos: int = ll.llama_vocab_eos(self._vocab)
        self._pieces: dict[int, bytes] = {}

    def metadata(self, key: str) -> str | None:
        """One value of the GGUF file's metadata as text, None when the file has no such key."""
        size = 1024
        while True:
            buffer = ctypes.create_string_buffer(size)
            written = self._ll.llama_model_meta_val_str(self._ptr, key.encode("utf-8"), buffer, size)
            if written < 0:
                return None
            if written < size:
                return buffer.value.decode("utf-8")
            size = written + 1

    def token_text(self, token: int) -> str:
        """A token's text as the vocabulary spells it (special tokens included: "<|im_end|>")."""
        return str(self._ll.llama_vocab_get_text(self._vocab, token).decode("utf-8"))

    def tokenize(self, text: str | bytes, *, add_bos: bool, special: bool) -> list[int]:
        """The tokens of `text`; `add_bos` puts the model's BOS first (if it has one), `special` reads
        special-token text ("<|im_start|>") as those tokens rather than as plain characters."""
        data = text.encode("utf-8") if isinstance(text, str) else text
        size = max(self.n_ctx_train, 1)
        for _ in range(2):
            tokens = (self._ll.llama_token * size)()
            count = self._ll.llama_tokenize(self._vocab, data, len(data), tokens, size, add_bos, special)
            if count >= 0:
                return list(tokens[:count])
            size = -count
        raise LlamaError(f"llama.cpp could not tokenize {len(data)} bytes of text")

    def piece(self, token: int) -> bytes:
        """The bytes a token adds to a reply (special tokens add none; a piece may be part of a UTF-8 character)."""
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

    def is_eog(self, token: int) -> bool:
        """Whether the token ends generation (end of sequence, end of turn)."""
        return bool(self._ll.llama_vocab_is_eog(self._vocab, token))

    def chat_template(self) -> ChatTemplate:
        """The chat template stored in the model file."""
        template = self.metadata("tokenizer.chat_template")
        if template is None:
            raise LlamaError("The model file has no chat template (tokenizer.chat_template)")
        return ChatTemplate(template, bos=self.token_text(self.bos) if self.bos != -1 else "",
                            eos=self.token_text(self.eos) if self.eos != -1 else "", eos_id=self.eos)

    def context(self, *, n_ctx: int, n_batch: int, n_ubatch: int, n_seq_max: int, n_threads: int) -> Context:
        """A context of `n_ctx` cells shared by `n_seq_max` sequences, each in its own KV stream."""
        return Context(self, n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_ubatch, n_seq_max=n_seq_max,
                       n_threads=n_threads)

    def close(self) -> None:
        """Free the model (after every context made from it)."""
        if self._ptr:
            self._ll.llama_model_free(self._ptr)
            self._ptr = None


@dataclass(frozen=True)
class ChatPrompt:
    """A conversation in the model's chat template: the text, whether tokenising must add BOS, the stops."""

    text: str
    add_bos: bool
    stops: list[str]


class ChatTemplate:
    """The model's Jinja chat template, rendered as Hugging Face's transformers render it (llama-cpp-python's
    Jinja2ChatFormatter), with the generation prompt for the assistant's turn."""

    def __init__(self, template: str, *, bos: str, eos: str, eos_id: int) -> None:
        library()
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos,
                                              stop_token_ids=[eos_id])

    def render(self, messages: Iterable[Mapping[str, str]]) -> ChatPrompt:
        """The prompt for these messages (each a dict with "role" and "content")."""
        plain = [dict(message) for message in messages]
        formatted = self._formatter(messages=plain)  # type: ignore[arg-type]  # typed for its TypedDicts; reads dicts
        stop = formatted.stop or []
        return ChatPrompt(formatted.prompt, add_bos=not formatted.added_special,
                          stops=[stop] if isinstance(stop, str) else list(stop))


# -- a context, its batches and its sequences ----------------------------------------------------

class Batch:
    """Tokens for one `Context.decode`: each with its position, its sequence and whether its logits are kept."""

    def __init__(self, ll: Any, capacity: int) -> None:
        self._ll = ll
        self.capacity = capacity
        self._raw = ll.llama_batch_init(capacity, 0, 1)
        self._freed = False

    def clear(self) -> None:
        """Empty the batch for the next step."""
        self._raw.n_tokens = 0

    def add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        """Add one token of sequence `seq` at position `pos`; its row of logits, if kept, is the returned index."""
        raw = self._raw
        n = raw.n_tokens
        if n >= self.capacity:
            raise LlamaError(f"The batch holds at most {self.capacity} tokens")
        raw.token[n], raw.pos[n], raw.n_seq_id[n] = token, pos, 1
        raw.seq_id[n][0] = seq
        raw.logits[n] = logits
        raw.n_tokens = n + 1
        return n

    def __len__(self) -> int:
        return int(self._raw.n_tokens)

    def close(self) -> None:
        if not self._freed:
            self._ll.llama_batch_free(self._raw)
            self._freed = True


class Context:
    """One llama.cpp context: sequences 0..n_seq_max-1, each in its own KV stream of n_ctx / n_seq_max cells
    (kv_unified off), so a sequence's numbers never depend on the others."""

    def __init__(self, model: Model, *, n_ctx: int, n_batch: int, n_ubatch: int, n_seq_max: int,
                 n_threads: int) -> None:
        ll = self._ll = model._ll
        self.model = model
        params = ll.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = n_batch
        params.n_ubatch = n_ubatch
        params.n_seq_max = n_seq_max
        params.kv_unified = False  # one KV stream per sequence
        params.flash_attn_type = 0  # disabled, as llama-cpp-python's default was
        params.n_threads = params.n_threads_batch = n_threads
        params.no_perf = True
        self._ptr = ll.llama_init_from_model(model._ptr, params)
        if not self._ptr:
            raise LlamaError(f"llama.cpp could not create a context for {n_seq_max} sequences in {n_ctx} cells")
        self._memory = ll.llama_get_memory(self._ptr)
        self.n_ctx = n_ctx
        self.n_batch = n_batch

    def batch(self, capacity: int | None = None) -> Batch:
        """An empty batch of up to `capacity` tokens (the context's n_batch by default)."""
        return Batch(self._ll, capacity or self.n_batch)

    def decode(self, batch: Batch) -> None:
        """Run the model on the batch: its tokens enter their sequences' memory, the kept logits are computed."""
        status = self._ll.llama_decode(self._ptr, batch._raw)
        if status != 0:
            meaning = _DECODE_STATUS.get(status, "error")
            raise LlamaError(f"llama_decode returned {status} ({meaning})")

    def sample(self, chain: SamplerChain, index: int) -> int:
        """The next token from the logits of the batch's `index`th token, through the chain (which it updates)."""
        if not chain._ptr:
            raise LlamaError("This sampler chain was freed")
        return int(self._ll.llama_sampler_sample(chain._ptr, self._ptr, index))

    # per-sequence memory
    def seq_rm(self, seq: int, p0: int = -1, p1: int = -1) -> bool:
        """Forget sequence `seq`'s cells at positions p0..p1-1 (all of them by default)."""
        return bool(self._ll.llama_memory_seq_rm(self._memory, seq, p0, p1))

    def seq_pos_min(self, seq: int) -> int:
        """The sequence's first position in memory, -1 when it is empty."""
        return int(self._ll.llama_memory_seq_pos_min(self._memory, seq))

    def seq_pos_max(self, seq: int) -> int:
        """The sequence's last position in memory, -1 when it is empty."""
        return int(self._ll.llama_memory_seq_pos_max(self._memory, seq))

    # per-sequence state (its KV cells as bytes), for prefix_cache.py
    def state_size(self, seq: int) -> int:
        """How many bytes `state_get(seq)` returns."""
        return int(self._ll.llama_state_seq_get_size(self._ptr, seq))

    def state_get(self, seq: int, size: int | None = None) -> bytes:
        """The sequence's state (its KV cells and positions) as bytes; b"" if llama.cpp wrote none."""
        size = self.state_size(seq) if size is None else size
        if size <= 0:
            return b""
        buffer = (ctypes.c_uint8 * size)()
        written = self._ll.llama_state_seq_get_data(self._ptr, buffer, size, seq)
        return ctypes.string_at(buffer, written) if written > 0 else b""

    def state_set(self, seq: int, data: bytes) -> bool:
        """Put a state from `state_get` into sequence `seq` (emptied first by the caller); True if all was read."""
        source = ctypes.cast(ctypes.c_char_p(data), ctypes.POINTER(ctypes.c_uint8))
        return bool(self._ll.llama_state_seq_set_data(self._ptr, source, len(data), seq) == len(data))

    def close(self) -> None:
        if self._ptr:
            self._ll.llama_free(self._ptr)
            self._ptr = None


# -- sampling -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Grammar:
    """A GBNF grammar whose rule `root` every reply must match."""

    text: str
    root: str = "root"

    @classmethod
    def gbnf(cls, text: str) -> Grammar:
        return cls(text)

    @classmethod
    def json(cls) -> Grammar:
        """Any JSON value (llama.cpp's json.gbnf)."""
        library()
        from llama_cpp.llama_grammar import JSON_GBNF

        return cls(JSON_GBNF)

    @classmethod
    def json_schema(cls, schema: Mapping[str, Any] | str) -> Grammar:
        """JSON matching the schema; GrammarError (with the converter's words) for a schema it cannot express."""
        library()
        from llama_cpp.llama_grammar import json_schema_to_gbnf

        try:
            return cls(json_schema_to_gbnf(schema if isinstance(schema, str) else json.dumps(schema)))
        except Exception as exc:  # the converter raises plain exceptions for schemas it cannot express
            raise GrammarError(str(exc)) from None


class SamplerChain:
    """The samplers that turn one row of logits into a token, applied in the order added. Free it when done."""

    def __init__(self, model: Model) -> None:
        ll = self._ll = model._ll
        self._model = model
        self._ptr = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())

    def _add(self, sampler: Any) -> SamplerChain:
        self._ll.llama_sampler_chain_add(self._ptr, sampler)
        return self

    def penalties(self, last_n: int, repeat: float, frequency: float, presence: float) -> SamplerChain:
        """Penalise tokens seen among the last `last_n` sampled: repeat (a factor), frequency and presence."""
        return self._add(self._ll.llama_sampler_init_penalties(self._model.n_vocab, last_n, repeat, frequency,
                                                               presence))

    def grammar(self, grammar: Grammar) -> SamplerChain:
        """Allow only tokens that keep the reply within the grammar; GrammarError if llama.cpp rejects it."""
        sampler = self._ll.llama_sampler_init_grammar(self._model._vocab, grammar.text.encode("utf-8"),
                                                      grammar.root.encode("utf-8"))
        if not sampler:
            raise GrammarError("llama.cpp could not parse the grammar")
        return self._add(sampler)

    def greedy(self) -> SamplerChain:
        """Take the most likely token."""
        return self._add(self._ll.llama_sampler_init_greedy())

    def top_k(self, k: int) -> SamplerChain:
        return self._add(self._ll.llama_sampler_init_top_k(k))

    def typical(self, p: float, min_keep: int = 1) -> SamplerChain:
        return self._add(self._ll.llama_sampler_init_typical(p, min_keep))

    def top_p(self, p: float, min_keep: int = 1) -> SamplerChain:
        return self._add(self._ll.llama_sampler_init_top_p(p, min_keep))

    def min_p(self, p: float, min_keep: int = 1) -> SamplerChain:
        return self._add(self._ll.llama_sampler_init_min_p(p, min_keep))

    def temp(self, t: float) -> SamplerChain:
        return self._add(self._ll.llama_sampler_init_temp(t))

    def dist(self, seed: int) -> SamplerChain:
        """Draw a token from the remaining distribution with a generator seeded by `seed` (32 bits)."""
        return self._add(self._ll.llama_sampler_init_dist(seed & 0xFFFFFFFF))

    def free(self) -> None:
        """Free the chain and every sampler in it (safe to call twice)."""
        if self._ptr:
            self._ll.llama_sampler_free(self._ptr)
            self._ptr = None
