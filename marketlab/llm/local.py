"""Start, find and stop the per-user local model server."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2

from . import config
from .engine import model_file
from .errors import LLMSetupError, PortTakenError
from .server import HEALTH_PATH

START_TIMEOUT_S = 120.0
# Variables the server process never needs; keeping them out keeps keys out of its memory and logs.
SECRET_VARIABLES = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "MARKETLAB_API_KEY")


def _health(port: int, timeout: float = 2.0) -> dict[str, Any] | None:
    try:
        reply = httpx2.get(f"http://127.0.0.1:{port}{HEALTH_PATH}", timeout=timeout)
        data = reply.json()
    except (httpx2.HTTPError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("service") == "marketlab-local" else None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_url(port: int) -> str:
    """The OpenAI base URL of a local server on this port."""
    return f"http://127.0.0.1:{port}/v1"


def read_state() -> dict[str, Any] | None:
    """The state file of the running server, if any."""
    try:
        return json.loads(config.server_state_path().read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def status() -> dict[str, Any] | None:
    """State of the running server if it answers, else None."""
    state = read_state()
    if state and _health(int(state["port"])):
        return state
    return None


@contextmanager
def _start_lock() -> Iterator[None]:
    # Several kernels may call client() at once: one starts the server, the others wait and reuse it.
    with open(config.home() / "server.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _choose_port() -> tuple[int, bool]:
    """The port to start on and whether a marketlab server already answers there."""
    explicit = bool(os.environ.get("MARKETLAB_PORT"))
    port = config.server_port()
    if _health(port):
        return port, True
    if _port_free(port):
        return port, False
    if explicit:
        raise PortTakenError(
            f"Port {port} (from MARKETLAB_PORT) is used by another program, so the local model cannot start.",
            f"Stop the program using port {port}, or set MARKETLAB_PORT to a free port (or unset it to let "
            "marketlab choose).",
        )
    return _free_port(), False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def ensure_server() -> str:
    """Base URL of the user's local server, starting it first if it is not running."""
    running = status()
    if running:
        return running["url"]
    model_file()  # fail with the install hint before spawning anything
    with _start_lock():
        running = status()
        if running:
            return running["url"]
        port, already = _choose_port()
        state: dict[str, Any] = {"port": port, "url": base_url(port)}
        if already:
            state["pid"] = _health(port)["pid"]  # type: ignore[index]
        else:
            state["pid"] = _spawn(port)
        state["started"] = time.time()
        config.server_state_path().write_text(json.dumps(state))
        return state["url"]


def _spawn(port: int) -> int:
    log_path = config.home() / "server.log"
    env = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "marketlab.llm.server", "--port", str(port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # survives the kernel that started it; shared by every kernel
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LLMSetupError(
                f"The local model server stopped while starting (exit code {process.returncode}). "
                f"Last lines of {log_path}:\n{_tail(log_path)}",
                "Run `marketlab doctor` for a diagnosis; reinstall with `make lab` if the model files are damaged.",
            )
        if _health(port, timeout=0.5):
            return process.pid
        time.sleep(0.2)
    process.kill()
    raise LLMSetupError(
        f"The local model server did not answer within {START_TIMEOUT_S:.0f} seconds. Log: {log_path}",
        "The machine may be overloaded; close other heavy programs and try again, or run `marketlab doctor`.",
    )


def stop_server() -> bool:
    """Stop the user's local server; True if one was running."""
    state = read_state()
    config.server_state_path().unlink(missing_ok=True)
    if not state:
        return False
    health = _health(int(state["port"]))
    pid = int(health["pid"]) if health else int(state.get("pid", 0))
    if not health or pid <= 0:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _health(int(state["port"]), timeout=0.3):
        time.sleep(0.1)
    return True
