"""An "upstream provider" for the hub tests: checks its API key, counts requests, and relays them to the real model.

It stands where OpenAI would stand behind the hub's gateway, so the tests can see what reached the
upstream (how many requests, with which key) while every answer still comes from the real local model.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx2
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .hub import free_port


@dataclass
class Relay:
    """The running relay: its URL, the key it accepts and what it has seen."""

    key: str
    target: str                      # base URL of the real model server (…/v1)
    port: int = field(default_factory=free_port)
    requests: Counter = field(default_factory=Counter)
    keys_seen: set[str] = field(default_factory=set)
    users_seen: list[str] = field(default_factory=list)
    server: uvicorn.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> Relay:
        async def relay(request: Request) -> Response:
            presented = request.headers.get("authorization", "").removeprefix("Bearer ")
            self.keys_seen.add(presented)
            if presented != self.key:
                return JSONResponse({"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                                               "param": None, "code": "invalid_api_key"}}, status_code=401)
            path = request.url.path.removeprefix("/v1")
            self.requests[path] += 1
            body = await request.body()
            if path == "/chat/completions":
                import json

                self.users_seen.append(json.loads(body).get("user", ""))
            upstream = httpx2.AsyncClient(timeout=300)
            forwarded = upstream.build_request(request.method, self.target + path, content=body,
                                               headers={"content-type": "application/json"})
            reply = await upstream.send(forwarded, stream=True)

            async def chunks():  # type: ignore[no-untyped-def]
                try:
                    async for chunk in reply.aiter_raw():
                        yield chunk
                finally:
                    await reply.aclose()
                    await upstream.aclose()

            return StreamingResponse(chunks(), status_code=reply.status_code,
                                     media_type=reply.headers.get("content-type"))

        app = Starlette(routes=[Route("/v1/{path:path}", relay, methods=["GET", "POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        threading.Thread(target=self.server.run, daemon=True).start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
