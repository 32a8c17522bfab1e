"""The embedded OpenAI-compatible HTTP server (run as `python -m marketlab.llm.server`).

Chat completions answer at once; the Batch API (files and batches, see batches.py) answers a
whole JSONL file in the background, through the same engine. The engine decodes several requests
together on its one model thread and admits waiting ones fairly per learner (OpenAI's `user` field).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from . import config
from .batches import BatchService, default_root, parse_multipart
from .config import LOCAL_MODEL
from .engine import (
    DEFAULT_PREFIX_CACHE_MB,
    DEFAULT_SLOT_CONTEXT,
    DEFAULT_SLOTS,
    PREFILL_BLOCK,
    READ_BLOCKS_PER_DECODE,
    LocalEngine,
)
from .protocol import ChatRequest, OpenAIError, parse_chat_request, server_stopping
from .selftest import probe
from .server_key import KEY_VARIABLE, RequireKey

HEALTH_PATH = "/health"
SERVICE = "marketlab-local"
# Set by the process that starts the server and written into that home's server.json: together with
# the venv and home the server reports, it tells a client "this is the server my home started".
TOKEN_VARIABLE = "MARKETLAB_SERVER_TOKEN"
MODELS = (LOCAL_MODEL,)
# How many requests the server decodes at once; a hub's gateway raises it for a class.
SLOTS_VARIABLE = "MARKETLAB_SERVER_SLOTS"
# Tokens of context per request (prompt and reply); each slot holds this much KV cache (about 22 kB a
# token, so 90 MB a slot at the default 4096). A gateway with many slots may lower it.
CONTEXT_VARIABLE = "MARKETLAB_SERVER_CONTEXT"
# Megabytes of host memory for reused prompt starts (0 turns reuse off); a hub's gateway raises it.
PREFIX_CACHE_VARIABLE = "MARKETLAB_PREFIX_CACHE_MB"
METRICS_PATH = "/metrics"
# After SIGTERM a request still generating gets a 503 at its next token, normally well under a
# second; this only bounds a pathological case (its client then gets a bare 500).
GRACEFUL_SHUTDOWN_S = 60
_END = object()
# Set on SIGTERM/SIGINT: generation in progress stops at the next token instead of running on.
STOPPING = threading.Event()

# Threads that only wait on the engine for a request's events (the model itself runs on the
# engine's one model thread): one per request in flight, so many learners can wait at once.
_REQUEST_THREADS = ThreadPoolExecutor(max_workers=256, thread_name_prefix="marketlab-request")


def _error(exc: OpenAIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


async def _in_request_thread(function: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(_REQUEST_THREADS, function, *args)


class _Either:
    """Set when any of its events is: the server is stopping, or this request's client has gone away."""

    def __init__(self, *events: threading.Event) -> None:
        self._events = events

    def is_set(self) -> bool:
        return any(event.is_set() for event in self._events)


async def _complete(engine: Any, chat_request: Any, request: Request, every_s: float = 0.5) -> dict[str, Any]:
    """A non-streamed answer that stops generating when its client disconnects (a client-side timeout).

    Without this, a request whose client gave up kept its slot in the model busy to the end, and
    the client's retries queued behind it: a busy machine then never caught up.
    """
    gone = threading.Event()
    work = asyncio.ensure_future(_in_request_thread(engine.complete, chat_request, _Either(STOPPING, gone)))
    while not work.done():
        await asyncio.wait({work}, timeout=every_s)
        if not work.done() and await request.is_disconnected():
            gone.set()
    return work.result()


def _produce(chunks: Iterator[dict[str, Any]], emit: Any, cancelled: threading.Event) -> None:
    """Pass a streamed generation's chunks from the engine to the event loop (on a request thread)."""
    try:
        for chunk in chunks:
            if cancelled.is_set():
                break
            if STOPPING.is_set():  # never end a cut-off stream with [DONE], as if it were whole
                emit(server_stopping())
                break
            emit(chunk)
    except OpenAIError as exc:
        emit(exc)
    except Exception as exc:  # reported to the client as a 500, never a dead server
        emit(OpenAIError(500, f"The local model failed on this request: {type(exc).__name__}: {exc}",
                         type="server_error"))
    finally:
        chunks.close()
        emit(_END)


async def _stream(engine: LocalEngine, request: ChatRequest) -> Response:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    cancelled = threading.Event()
    emit = lambda item: loop.call_soon_threadsafe(queue.put_nowait, item)  # noqa: E731
    loop.run_in_executor(_REQUEST_THREADS, _produce, engine.stream(request, _Either(STOPPING, cancelled)), emit,
                         cancelled)
    first = await queue.get()
    if isinstance(first, OpenAIError):  # a bad request fails as a 400 before any event is sent
        cancelled.set()
        return _error(first)

    async def events() -> AsyncIterator[bytes]:
        item = first
        try:
            while item is not _END:
                if isinstance(item, OpenAIError):
                    raise item
                yield f"data: {json.dumps(item)}\n\n".encode()
                item = await queue.get()
            yield b"data: [DONE]\n\n"
        finally:
            cancelled.set()  # the client went away: stop generating, free the slot for the next request

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def identity() -> dict[str, Any]:
    """Who this server is: its pid, the venv it runs from, the marketlab home it serves, its token."""
    return {"service": SERVICE, "pid": os.getpid(), "prefix": sys.prefix, "home": str(config.home().resolve()),
            "token": os.environ.get(TOKEN_VARIABLE, "")}


def _check_model(request: ChatRequest) -> None:
    """OpenAI's answers for a missing or unknown model name."""
    if not request.model:
        raise OpenAIError(400, "You must provide a model parameter. This server serves: "
                          f"{', '.join(MODELS)} (marketlab.llm.model_name() gives it).", param="model")
    if request.model not in MODELS:
        raise OpenAIError(404, f"The model `{request.model}` does not exist on marketlab's built-in server. "
                          f"The models it serves: {', '.join(MODELS)}. Pass model=marketlab.llm.model_name().",
                          param="model", code="model_not_found")


def _batch_answerer(engine: LocalEngine) -> Any:
    """How one request of a batch is answered: as /v1/chat/completions would, through the same engine."""

    async def answer(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            chat_request = parse_chat_request(body)
            _check_model(chat_request)
            if chat_request.stream:
                raise OpenAIError(400, "A batch request cannot stream; leave 'stream' out.", param="stream")
            return 200, await _in_request_thread(engine.complete, chat_request, STOPPING)
        except OpenAIError as exc:
            return exc.status, exc.body()
        except Exception as exc:  # one failed request fails its line, never the batch
            return 500, OpenAIError(500, f"The local model failed on this request: {type(exc).__name__}: {exc}",
                                    type="server_error").body()

    return answer


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OpenAIError(400, f"We could not parse the JSON body of your request ({exc}). "
                          "Send a valid JSON object.", code="invalid_json") from None


# name, type, help, and where the value is in (load, figures): Prometheus's text format, for a scraper.
_METRICS = (
    ("marketlab_requests_decoding", "gauge", "Requests in a decoding slot.", ("load", "decoding")),
    ("marketlab_requests_waiting", "gauge", "Requests waiting for a slot.", ("load", "waiting")),
    ("marketlab_slots", "gauge", "Requests the model decodes at once.", ("load", "slots")),
    ("marketlab_requests_total", "counter", "Requests that got a first token.", ("figures", "requests")),
    ("marketlab_generated_tokens_total", "counter", "Reply tokens generated.", ("figures", "generated_tokens")),
    ("marketlab_busy_seconds_total", "counter", "Seconds the model spent reading or decoding.", ("figures", "busy_s")),
    ("marketlab_time_to_first_token_p50_seconds", "gauge", "Median time to first token, recent requests.",
     ("figures", "ttft_p50_s")),
    ("marketlab_time_to_first_token_p90_seconds", "gauge", "90th percentile time to first token, recent requests.",
     ("figures", "ttft_p90_s")),
    ("marketlab_prefix_cache_hits_total", "counter", "Prompts that reused a stored start.", ("cache", "hits")),
    ("marketlab_prefix_cache_misses_total", "counter", "Prompts read from their first token.", ("cache", "misses")),
    ("marketlab_prefix_cache_evictions_total", "counter", "Stored starts evicted to stay in the limit.",
     ("cache", "evictions")),
    ("marketlab_prefix_cache_bytes", "gauge", "Bytes of stored prompt starts.", ("cache", "bytes")),
    ("marketlab_prefix_cache_limit_bytes", "gauge", "Limit of stored prompt starts.", ("cache", "limit_bytes")),
    ("marketlab_prefix_cache_entries", "gauge", "Stored prompt starts.", ("cache", "entries")),
    ("marketlab_prompt_tokens_reused_total", "counter", "Prompt tokens restored instead of read.",
     ("cache", "tokens_reused")),
    ("marketlab_prompt_tokens_read_total", "counter", "Prompt tokens read by the model.", ("cache", "tokens_read")),
)


def prometheus_text(load: dict[str, Any], figures: dict[str, Any], in_flight: int) -> str:
    """The server's figures in Prometheus's text exposition format (what /metrics answers)."""
    sources = {"load": load, "figures": figures, "cache": figures.get("prefix_cache", {})}
    lines = ["# HELP marketlab_http_requests_in_flight Chat requests the server is answering.",
             "# TYPE marketlab_http_requests_in_flight gauge", f"marketlab_http_requests_in_flight {in_flight}"]
    for name, kind, text, (source, key) in _METRICS:
        value = sources[source].get(key)
        if value is None:
            continue
        shown = str(value) if isinstance(value, int) else repr(float(value))  # exact: byte counts stay whole
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {shown}"]
    return "\n".join(lines) + "\n"


def build_app(engine: LocalEngine, batch_root: Path | None = None) -> Starlette:
    """The Starlette app serving /v1/models, /v1/chat/completions, the Batch API (files, batches), /health, /metrics."""
    started = int(time.time())
    me = identity()
    in_flight = [0]
    batches = BatchService(batch_root or default_root(), _batch_answerer(engine), STOPPING)

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [
            {"id": name, "object": "model", "created": started, "owned_by": "marketlab"} for name in MODELS]})

    async def health(request: Request) -> JSONResponse:
        load = engine.load() if hasattr(engine, "load") else {}
        figures = engine.figures() if hasattr(engine, "figures") else {}
        return JSONResponse({"status": "stopping" if STOPPING.is_set() else "ok", "model": LOCAL_MODEL,
                             "busy": in_flight[0], **load, **figures, **me})

    async def metrics(request: Request) -> Response:
        load = engine.load() if hasattr(engine, "load") else {}
        figures = engine.figures() if hasattr(engine, "figures") else {}
        return Response(prometheus_text(load, figures, in_flight[0]), media_type="text/plain; version=0.0.4")

    async def chat(request: Request) -> Response:
        try:
            body = await _json_body(request)
        except OpenAIError as exc:
            return _error(exc)
        in_flight[0] += 1
        try:
            chat_request = parse_chat_request(body)
            _check_model(chat_request)
            if chat_request.stream:
                return await _stream(engine, chat_request)
            return JSONResponse(await _complete(engine, chat_request, request))
        except OpenAIError as exc:
            return _error(exc)
        finally:
            in_flight[0] -= 1

    async def upload_file(request: Request) -> JSONResponse:
        parts = parse_multipart(await request.body(), request.headers.get("content-type", ""))
        return JSONResponse(batches.upload(parts))

    async def get_file(request: Request) -> JSONResponse:
        return JSONResponse(batches.file(request.path_params["file_id"]))

    async def file_content(request: Request) -> Response:
        return Response(batches.file_content(request.path_params["file_id"]), media_type="application/octet-stream")

    async def create_batch(request: Request) -> JSONResponse:
        return JSONResponse(batches.create_batch(await _json_body(request)))

    async def list_batches(request: Request) -> JSONResponse:
        try:
            limit = int(request.query_params.get("limit", "20"))
        except ValueError:
            raise OpenAIError(400, "limit must be a whole number.", param="limit") from None
        return JSONResponse(batches.list_batches(max(1, min(limit, 100)), request.query_params.get("after")))

    async def get_batch(request: Request) -> JSONResponse:
        return JSONResponse(batches.batch(request.path_params["batch_id"]))

    async def cancel_batch(request: Request) -> JSONResponse:
        return JSONResponse(batches.cancel(request.path_params["batch_id"]))

    async def openai_error(request: Request, exc: OpenAIError) -> JSONResponse:
        return _error(exc)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        batches.resume()  # batches left unfinished when the server last stopped carry on
        yield
        await batches.close()

    async def not_found(request: Request, exc: HTTPException) -> JSONResponse:
        message = f"Invalid URL ({request.method} {request.url.path})" if exc.status_code in (404, 405) else exc.detail
        return JSONResponse(OpenAIError(exc.status_code, message).body(), status_code=exc.status_code)

    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        body = OpenAIError(500, f"The local model failed on this request: {type(exc).__name__}: {exc}",
                           type="server_error").body()
        return JSONResponse(body, status_code=500)

    return Starlette(
        routes=[
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/files", upload_file, methods=["POST"]),
            Route("/v1/files/{file_id}", get_file, methods=["GET"]),
            Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
            Route("/v1/batches", create_batch, methods=["POST"]),
            Route("/v1/batches", list_batches, methods=["GET"]),
            Route("/v1/batches/{batch_id}", get_batch, methods=["GET"]),
            Route("/v1/batches/{batch_id}/cancel", cancel_batch, methods=["POST"]),
            Route(HEALTH_PATH, health, methods=["GET"]),
            Route(METRICS_PATH, metrics, methods=["GET"]),
        ],
        exception_handlers={HTTPException: not_found, OpenAIError: openai_error, Exception: crashed},
        lifespan=lifespan,
        # Started by the hub's gateway: only the gateway, holding this key, may use the model.
        middleware=[Middleware(RequireKey, key=key)] if (key := os.environ.get(KEY_VARIABLE)) else [],
    )


def main(argv: list[str] | None = None) -> None:
    """Load the model and serve until stopped."""
    import uvicorn

    parser = argparse.ArgumentParser(description="marketlab's embedded OpenAI-compatible model server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n-ctx", type=int, default=int(os.environ.get(CONTEXT_VARIABLE) or DEFAULT_SLOT_CONTEXT),
                        help=f"context length of each request (default {DEFAULT_SLOT_CONTEXT}, or ${CONTEXT_VARIABLE})")
    parser.add_argument("--parallel", type=int, default=int(os.environ.get(SLOTS_VARIABLE) or DEFAULT_SLOTS),
                        help=f"requests decoded at once (default {DEFAULT_SLOTS}, or ${SLOTS_VARIABLE})")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: one per core)")
    parser.add_argument("--prefix-cache-mb", type=float,
                        default=float(os.environ.get(PREFIX_CACHE_VARIABLE) or DEFAULT_PREFIX_CACHE_MB),
                        help=f"memory for reused prompt starts, 0 for none (default {DEFAULT_PREFIX_CACHE_MB}, "
                             f"or ${PREFIX_CACHE_VARIABLE})")
    parser.add_argument("--prefill-block", type=int, default=PREFILL_BLOCK,
                        help=f"prompt tokens read per step, the unit of reuse (default {PREFILL_BLOCK})")
    parser.add_argument("--read-blocks", type=int, default=READ_BLOCKS_PER_DECODE,
                        help="prompt blocks read in a row before a decode step of the replies already streaming "
                             f"(default {READ_BLOCKS_PER_DECODE})")
    args = parser.parse_args(argv)
    engine = LocalEngine(n_ctx=args.n_ctx, slots=max(1, args.parallel), n_threads=args.threads,
                         block=args.prefill_block, read_blocks=args.read_blocks,
                         prefix_cache_mb=max(0.0, args.prefix_cache_mb))
    # The self-test before /health answers: an engine compiled for instructions this processor lacks
    # dies here, and the supervisor records how, instead of a server that says "ready" and dies on
    # the first learner's request. A reused prompt start never changes a reply, so it changes no later one.
    checked = probe(engine)
    print(f"[marketlab] engine self-test passed in {checked['seconds']:.2f} s", flush=True)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            STOPPING.set()  # a reply being generated stops at its next token (503), not after minutes
            super().handle_exit(sig, frame)

    settings = uvicorn.Config(build_app(engine), host=args.host, port=args.port, log_level="warning",
                              access_log=False, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    Server(settings).run()


if __name__ == "__main__":
    main()
