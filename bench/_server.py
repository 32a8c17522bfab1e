"""Starting a throwaway HTTP server for a benchmark: a free loopback port, then wait until /health answers."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Mapping


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(command: Callable[[int], list[str]], *, seconds: float, what: str,
                 env: Mapping[str, str] | None = None, need_ok: bool = True) -> tuple[subprocess.Popen, str]:
    """Run `command(port)` and wait until its /health answers (with 200 if `need_ok`); the process and /v1 URL."""
    import httpx2

    port = free_port()
    process = subprocess.Popen(command(port), env=dict(env) if env is not None else None,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            try:
                reply = httpx2.get(f"http://127.0.0.1:{port}/health", timeout=0.5)
                if reply.status_code == 200 or not need_ok:
                    return process, f"http://127.0.0.1:{port}/v1"
            except httpx2.HTTPError:
                time.sleep(0.2)
    except BaseException:  # Ctrl-C while it starts: leave no server behind
        process.kill()
        process.wait()
        raise
    process.kill()
    process.wait()
    raise RuntimeError(f"{what} did not start")
