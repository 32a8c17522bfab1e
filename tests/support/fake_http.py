"""Tiny HTTP endpoints on 127.0.0.1 for tests: fault-injecting providers and impostor servers.

    class Failing(JSONHandler):
        def do_POST(self):
            self.reply(500, {"error": {...}})

    with serving(Failing) as base:   # "http://127.0.0.1:<port>"
        ...

They sit behind the real openai SDK (or marketlab's own health checks), over real HTTP.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class JSONHandler(BaseHTTPRequestHandler):
    """A request handler that answers JSON and keeps quiet."""

    def body(self) -> bytes:
        """The request body (read once)."""
        return self.rfile.read(int(self.headers.get("content-length", 0)))

    def bearer(self) -> str:
        """The key the caller sent."""
        return self.headers.get("authorization", "").removeprefix("Bearer ")

    def reply(self, status: int, payload: Any) -> None:
        """Send `payload` as JSON with this status."""
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on a free loopback port for the duration; yields the base address."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.calls = 0  # type: ignore[attr-defined]  # for handlers that answer by call number
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
