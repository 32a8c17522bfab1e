"""The embedded OpenAI-compatible HTTP server (run as `python -m marketlab.llm.server`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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

from .config import LOCAL_MODEL
from .engine import LocalEngine
from .protocol import ChatRequest, OpenAIError, parse_chat_request

HEALTH_PATH = "/health"
_END = object()

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


def build_app(engine: LocalEngine) -> Starlette:
    """The Starlette app serving /v1/models, /v1/chat/completions and /health."""
    started = int(time.time())

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [
            {"id": LOCAL_MODEL, "object": "model", "created": started, "owned_by": "marketlab"}]})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "service": "marketlab-local", "model": LOCAL_MODEL,
                             "pid": os.getpid()})

    async def chat(request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return _error(OpenAIError(400, f"We could not parse the JSON body of your request ({exc}). "
                                      "Send a valid JSON object.", code="invalid_json"))
        try:
            chat_request = parse_chat_request(body)
            if chat_request.stream:
                return await _stream(engine, chat_request)
            return JSONResponse(await _on_model_thread(engine.complete, chat_request))
        except OpenAIError as exc:
            return _error(exc)

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
    uvicorn.run(build_app(engine), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
