"""Start, find and stop the per-user local model server.

A server belongs to the marketlab home (MARKETLAB_HOME) and the venv (sys.prefix) that started it: it
reports both, with its pid and a token, on /health, and the starting process writes the same into
that home's server.json. A process only uses a server that runs from its own venv and either serves
its own home or is named, token and pid, by its home's server.json (a state file copied on purpose,
as the test suite does to share one server between private ledgers). It only ever stops a server
its own home started, by the pid that server reports.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from . import config
from .engine import model_file
from .errors import LLMSetupError, ModelStoppedDuringCallError, ModelStoppedError, PortTakenError
from .exits import Ending
from .selftest import fix_for
from .server import HEALTH_PATH, SERVICE, TOKEN_VARIABLE

START_TIMEOUT_S = 120.0
# How long `stop_server` waits for the process to exit. A request in progress is cut at its next
# token, so the server is normally gone within a second.
STOP_WAIT_S = 15.0
# Variables the server process never needs; keeping them out keeps keys out of its memory and logs.
SECRET_VARIABLES = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "MARKETLAB_API_KEY")
# The process `_spawn` starts: it runs the server as its child and records how that child ended.
SUPERVISOR = Path(__file__).with_name("supervisor.py")
# How long a call that lost its connection waits for the supervisor's record of a server that died.
ENDING_WAIT_S = 3.0


def _health(port: int, timeout: float = 2.0) -> dict[str, Any] | None:
    try:
        reply = httpx2.get(f"http://127.0.0.1:{port}{HEALTH_PATH}", timeout=timeout)
        data = reply.json()
    except (httpx2.HTTPError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("service") == SERVICE else None


def _my_home() -> str:
    return str(config.home().resolve())


def _same_venv(health: dict[str, Any]) -> bool:
    return health.get("prefix") == sys.prefix


def _named_by(health: dict[str, Any], state: dict[str, Any] | None) -> bool:
    """The state file names this very server: same token and pid."""
    return bool(state and state.get("token") and state.get("token") == health.get("token")
                and int(state.get("pid", 0)) == int(health.get("pid", -1)))


def _usable(health: dict[str, Any], state: dict[str, Any] | None) -> bool:
    """May this process send its requests to the server that gave this health reply?"""
    return _same_venv(health) and (health.get("home") == _my_home() or _named_by(health, state))


def _started_here(health: dict[str, Any], state: dict[str, Any] | None) -> bool:
    """Did this home start the server (so that this home may stop it)?"""
    return _same_venv(health) and health.get("home") == _my_home() and _named_by(health, state)


def _whose(health: dict[str, Any]) -> str:
    if not _same_venv(health):
        return f"another marketlab installation ({health.get('prefix') or 'an older version'})"
    return f"another marketlab home ({health.get('home') or 'unknown'})"


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
    """The state file of this home's server, if any."""
    try:
        state = json.loads(config.server_state_path().read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return state if isinstance(state, dict) and "port" in state else None


def _write_state(port: int, health: dict[str, Any], token: str) -> dict[str, Any]:
    state = {"port": port, "url": base_url(port), "pid": int(health["pid"]), "token": token,
             "home": health["home"], "prefix": health["prefix"], "started": time.time()}
    config.server_state_path().write_text(json.dumps(state))
    return state


# -- how the last server ended ---------------------------------------------------------------

def ending_path() -> Path:
    """Where the supervisor records how this home's server ended (pid, exit status, time, token)."""
    return config.home() / "server-ended.json"


@dataclass(frozen=True)
class Stopped:
    """This home's server ended without being asked to: how, when, and what to do."""

    ending: Ending
    ended: float
    pid: int
    token: str

    def problem(self, *, starting: bool = False) -> str:
        when = "while starting" if starting else f"at {time.strftime('%H:%M:%S', time.localtime(self.ended))}"
        return f"The built-in model stopped {when}: {self.ending.sentence()}."

    def fix(self) -> str:
        return fix_for(self.ending)


def _read_ending(token: str | None = None) -> Stopped | None:
    try:
        record = json.loads(ending_path().read_text())
        stopped = Stopped(Ending(int(record["returncode"])), float(record["ended"]), int(record["pid"]),
                          str(record.get("token", "")))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    return stopped if token is None or stopped.token == token else None


def last_crash() -> Stopped | None:
    """How this home's server last ended, when nobody asked it to stop and no server runs since."""
    stopped = _read_ending()
    if stopped is None or stopped.ending.requested or status():
        return None
    return stopped


def _ending_of(state: dict[str, Any]) -> Stopped | None:
    """How the server this state names ended: its supervisor writes the record a moment after it dies."""
    deadline = time.monotonic() + ENDING_WAIT_S
    while (stopped := _read_ending(str(state.get("token", "")))) is None:
        if _alive(int(state["pid"])) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return stopped


def why_it_ended() -> Stopped | None:
    """How this home's last server ended, once it has (waiting a moment for its supervisor's record)."""
    state = read_state()
    return (_ending_of(state) if state else None) or last_crash()


def stopped_during_call(port: int) -> ModelStoppedDuringCallError | None:
    """Why a call to this home's server on `port` lost its connection, if the server died."""
    state = read_state()
    stopped = _ending_of(state) if state and int(state["port"]) == port else None
    if stopped is None:  # a server started since (or a restart that failed) may have left the record
        stopped = last_crash()
        if stopped is None:
            return None
    if stopped.ending.requested:
        return ModelStoppedDuringCallError(
            "The built-in model was stopped (marketlab serve --stop) while this cell was waiting for it.",
            "Run the cell again: the model starts by itself.")
    return ModelStoppedDuringCallError(stopped.problem(), stopped.fix())


class LocalTransport(httpx2.BaseTransport):
    """The local backend's transport: a call that finds the server dead says how it died, not "Connection error"."""

    def __init__(self, inner: httpx2.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            return self._inner.handle_request(request)
        except httpx2.TransportError as exc:
            if isinstance(exc, httpx2.TimeoutException):
                raise
            stopped = stopped_during_call(request.url.port or 0)
            if stopped is None:
                raise
            raise stopped from exc

    def close(self) -> None:
        self._inner.close()


def expected_url() -> str:
    """Where this home's server runs, or would be started: for messages, without starting anything."""
    state = read_state()
    if state:
        return str(state["url"])
    try:
        return base_url(config.server_port())
    except LLMSetupError:
        return base_url(config.DEFAULT_PORT)


def status() -> dict[str, Any] | None:
    """State of this home's server if it answers and is one this process may use, else None."""
    answered = status_and_health()
    return answered[0] if answered else None


def status_and_health() -> tuple[dict[str, Any], dict[str, Any]] | None:
    """This home's usable server: its state file and what /health says (time to first token, tokens per
    second, prompt reuse), from one request; None when no usable server answers."""
    state = read_state()
    if not state:
        return None
    health = _health(int(state["port"]))
    return (state, health) if health and _usable(health, state) else None


@contextmanager
def _start_lock() -> Iterator[None]:
    # Several kernels may call client() at once: one starts the server, the others wait and reuse it.
    with open(config.home() / "server.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _choose_port() -> tuple[int, dict[str, Any] | None]:
    """The port to use, with the health reply of this home's server if it already runs there."""
    explicit = bool(os.environ.get("MARKETLAB_PORT"))
    port = config.server_port()
    health = _health(port)
    if health and _usable(health, read_state()):
        return port, health
    if health:
        if explicit:
            raise PortTakenError(
                f"Port {port} (from MARKETLAB_PORT) is used by the model server of {_whose(health)}, "
                "so this one cannot start there.",
                f"Set MARKETLAB_PORT to a free port, or unset it to let marketlab choose one; to share that "
                f"server instead, use its home: MARKETLAB_HOME={health.get('home')}.",
            )
        return _free_port(), None
    if _port_free(port):
        return port, None
    if explicit:
        raise PortTakenError(
            f"Port {port} (from MARKETLAB_PORT) is used by another program, so the local model cannot start.",
            f"Stop the program using port {port}, or set MARKETLAB_PORT to a free port (or unset it to let "
            "marketlab choose).",
        )
    return _free_port(), None


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def ensure_server() -> str:
    """Base URL of this home's local server, starting it first if it is not running."""
    running = status()
    if running:
        return str(running["url"])
    model_file()  # fail with the install hint before spawning anything
    with _start_lock():
        running = status()
        if running:
            return str(running["url"])
        port, health = _choose_port()
        if health:  # ours, but the state file was lost: adopt it again
            return _write_state(port, health, str(health.get("token", "")))["url"]
        token = secrets.token_hex(16)
        return _write_state(port, _spawn(port, token), token)["url"]


def _spawn(port: int, token: str) -> dict[str, Any]:
    """Start a server on `port` and return its health reply once it has answered its self-test.

    The server answers /health only after a short request went through the engine (server.main),
    so "ready" means the engine runs on this processor; if it dies first, the supervisor's record
    says how, and that is what the error says.
    """
    log_path = config.home() / "server.log"
    env = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
    env[TOKEN_VARIABLE] = token
    env["MARKETLAB_HOME"] = _my_home()
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, str(SUPERVISOR), "--record", str(ending_path()), "--",
             sys.executable, "-m", "marketlab.llm.server", "--port", str(port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # survives the kernel that started it; shared by every kernel
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stopped = _read_ending(token)
            if stopped is not None and stopped.ending.signal is not None:
                raise ModelStoppedError(stopped.problem(starting=True), stopped.fix())
            code = stopped.ending.describe() if stopped else f"exit code {process.returncode}"
            raise ModelStoppedError(
                f"The built-in model stopped while starting ({code}). Last lines of {log_path}:\n{_tail(log_path)}",
                "Run `make engine` in the marketlab folder to reinstall the engine; if the log above names "
                "another problem (memory, disk), fix that and run the cell again.",
            )
        health = _health(port, timeout=0.5)
        if health and health.get("token") == token:
            ending_path().unlink(missing_ok=True)  # an earlier server's end is history now
            return health
        time.sleep(0.2)
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the supervisor and the server it started (its own session)
    except ProcessLookupError:
        pass
    process.wait()
    raise LLMSetupError(
        f"The local model server did not answer within {START_TIMEOUT_S:.0f} seconds. Log: {log_path}",
        "The machine may be overloaded; close other heavy programs and try again, or run `marketlab doctor`.",
    )


# -- stopping -------------------------------------------------------------------------------

@dataclass(frozen=True)
class StopResult:
    """What `stop_server` did; true only when this home's server was running and has exited."""

    outcome: str  # "stopped", "finishing", "not_running" or "not_ours"
    message: str
    pid: int | None = None

    def __bool__(self) -> bool:
        return self.outcome == "stopped"


def _runs_with_token(pid: int, token: str) -> bool:
    """Whether process `pid` runs and was started with this server token (read from its own environment)."""
    if pid <= 0 or not token or not _alive(pid):
        return False
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:  # gone, or another account's process: not one this home may stop
        return False
    return f"{TOKEN_VARIABLE}={token}".encode() in environ


def _alive(pid: int) -> bool:
    """Whether the process still runs (a zombie, exited but not yet reaped, does not count)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child: ask the kernel below
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def server_alive() -> bool:
    """Whether the server this home's state file names still runs (by its pid; busy or not)."""
    state = read_state()
    if not state:
        return False
    return _alive(int(state["pid"]))


def stop_server() -> StopResult:
    """Stop this home's local server, if this home started it; say what happened."""
    state = read_state()
    if not state:
        return StopResult("not_running", "No local model server was running for this marketlab home.")
    port = int(state["port"])
    health = _health(port)
    if not health and _runs_with_token(int(state.get("pid", 0)), str(state.get("token", ""))):
        # Alive but silent: a server busy with a class's queue can miss the health check's time limit.
        # It is still this home's (its own environment carries the state file's token): stop it.
        health = {"pid": int(state["pid"]), "busy": 0}
    elif not health:
        config.server_state_path().unlink(missing_ok=True)
        stopped = _read_ending(str(state.get("token", "")))
        if stopped is not None and not stopped.ending.requested:
            return StopResult("not_running", f"This home's local model server had already stopped: "
                                             f"{stopped.problem()}\nHow to fix: {stopped.fix()}")
        return StopResult("not_running", "No local model server was running for this marketlab home.")
    if "service" in health and not _started_here(health, state):
        if not _usable(health, state):
            config.server_state_path().unlink(missing_ok=True)  # it names a server that is gone
        return StopResult("not_ours", f"The model server on port {port} was started by {_whose(health)}; "
                                      "it was left running. Stop it from there.")
    pid = int(health["pid"])
    busy = int(health.get("busy", 0))
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        config.server_state_path().unlink(missing_ok=True)
        return StopResult("not_running", "No local model server was running for this marketlab home.")
    deadline = time.monotonic() + STOP_WAIT_S
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    config.server_state_path().unlink(missing_ok=True)
    if _alive(pid):
        return StopResult("finishing", f"The local model server (pid {pid}) is finishing a request; it stops "
                                       "as soon as that is done.", pid)
    cut = (f"; {busy} request(s) in progress were cut off and got an error saying so" if busy else "")
    return StopResult("stopped", f"Stopped the local model server (pid {pid}){cut}.", pid)
