"""The embedded OpenAI-compatible HTTP server (run as `python -m marketlab.llm.server`)."""

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
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from . import config
from .config import LOCAL_MODEL
from .engine import LocalEngine
from .protocol import ChatRequest, OpenAIError, parse_chat_request, server_stopping

HEALTH_PATH = "/health"
SERVICE = "marketlab-local"
# Set by the process that starts the server and written into that home's server.json: together with
# the venv and home the server reports, it tells a client "this is the server my home started".
TOKEN_VARIABLE = "MARKETLAB_SERVER_TOKEN"
MODELS = (LOCAL_MODEL,)
# After SIGTERM a request still generating gets a 503 at its next token, normally well under a
# second; this only bounds a pathological case (its client then gets a bare 500).
GRACEFUL_SHUTDOWN_S = 60
_END = object()
# Set on SIGTERM/SIGINT: generation in progress stops at the next token instead of running on.
STOPPING = threading.Event()

# Every request runs whole on this one thread, so requests are answered strictly in turn and
# never interleave inside the model. It also keeps llama.cpp fast: its OpenMP workers belong to
# the calling thread, and a new calling thread per request would leave old teams spinning.
_MODEL_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="marketlab-model")


def _error(exc: OpenAIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


async def _on_model_thread(function: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(_MODEL_THREAD, function, *args)


def _produce(chunks: Iterator[dict[str, Any]], emit: Any, cancelled: threading.Event) -> None:
    """Run a whole streamed generation on the model thread, handing each chunk to the event loop."""
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
    loop.run_in_executor(_MODEL_THREAD, _produce, engine.stream(request), emit, cancelled)
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
            cancelled.set()  # the client went away: stop generating, free the model for the next request

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


def build_app(engine: LocalEngine) -> Starlette:
    """The Starlette app serving /v1/models, /v1/chat/completions and /health."""
    started = int(time.time())
    me = identity()
    in_flight = [0]

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [
            {"id": name, "object": "model", "created": started, "owned_by": "marketlab"} for name in MODELS]})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "stopping" if STOPPING.is_set() else "ok", "model": LOCAL_MODEL,
                             "busy": in_flight[0], **me})

    async def chat(request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return _error(OpenAIError(400, f"We could not parse the JSON body of your request ({exc}). "
                                      "Send a valid JSON object.", code="invalid_json"))
        in_flight[0] += 1
        try:
            chat_request = parse_chat_request(body)
            _check_model(chat_request)
            if chat_request.stream:
                return await _stream(engine, chat_request)
            return JSONResponse(await _on_model_thread(engine.complete, chat_request, STOPPING))
        except OpenAIError as exc:
            return _error(exc)
        finally:
            in_flight[0] -= 1

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
            Route(HEALTH_PATH, health, methods=["GET"]),
        ],
        exception_handlers={HTTPException: not_found, Exception: crashed},
    )


def main(argv: list[str] | None = None) -> None:
    """Load the model and serve until stopped."""
    import uvicorn

    parser = argparse.ArgumentParser(description="marketlab's embedded OpenAI-compatible model server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n-ctx", type=int, default=4096)
    args = parser.parse_args(argv)
    engine = LocalEngine(n_ctx=args.n_ctx)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            STOPPING.set()  # a reply being generated stops at its next token (503), not after minutes
            super().handle_exit(sig, frame)

    settings = uvicorn.Config(build_app(engine), host=args.host, port=args.port, log_level="warning",
                              access_log=False, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    Server(settings).run()


if __name__ == "__main__":
    main()
