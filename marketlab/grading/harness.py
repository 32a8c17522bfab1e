"""Where a check runs learner code that lives in files, and how it talks to it.

A check that needs a saved artifact (lab01_messages.py, workflow.py) starts it in a fresh Python
through a Harness: `LocalHarness` (a plain process, for the notebook's instant feedback) or the
grading sandbox (`marketlab.grading.execute.SandboxHarness`). Either way the check itself, the
expected values and the scripted model endpoint stay in the checking process: the learner's
process only gets inputs and a socket to the endpoint, and its answers come back as data.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from . import wire

CALL_TIMEOUT_S = 30.0


class Harness(ABC):
    """Starts learner code from files, in a fresh Python, with no key and no network beyond our socket."""

    @abstractmethod
    def start(self, folder: Path, argv: list[str]) -> subprocess.Popen:
        """Start `python -I argv...` with `folder` as its working directory; pipes on stdin/stdout/stderr."""

    @abstractmethod
    def stop(self, process: subprocess.Popen) -> None:
        """Stop a process this harness started."""

    @abstractmethod
    def socket_dir(self) -> Path:
        """A folder whose unix sockets the learner's process can reach."""

    def inside(self, path: Path) -> str:
        """The path as the learner's process sees it."""
        return str(path)

    def deadline(self) -> float:
        """Seconds left for learner code in this check (grading has a clock per submission)."""
        return 240.0

    def run(self, folder: Path, argv: list[str], stdin: bytes, timeout: float) -> tuple[int | None, bytes, bytes]:
        """Run to the end; (return code or None on timeout, stdout, stderr), output capped."""
        process = self.start(folder, argv)
        try:
            out, err = process.communicate(stdin, timeout=min(timeout, self.deadline()))
        except subprocess.TimeoutExpired:
            self.stop(process)
            return None, b"", b""
        return process.returncode, out[: wire.MAX_TEXT], err[-20000:]

    @contextmanager
    def module(self, folder: Path, filename: str) -> Iterator[ModuleProcess]:
        """A learner's saved module, imported in a fresh process, served one request at a time."""
        with self.served(folder, ["-m", "marketlab.grading.serve_module", self.inside(folder / filename)]) as served:
            yield served

    @contextmanager
    def served(self, folder: Path, argv: list[str]) -> Iterator[ModuleProcess]:
        """A fresh process that answers JSON requests line by line (serve_module's protocol)."""
        process = self.start(folder, argv)
        try:
            yield ModuleProcess(process, self.deadline())
        finally:
            self.stop(process)


class LocalHarness(Harness):
    """A plain child process: for instant feedback in the learner's own notebook."""

    def __init__(self) -> None:
        self._sockets = Path(tempfile.mkdtemp(prefix="marketlab-check-"))
        # Each check in a learner's notebook makes one of these: its folder goes with it.
        weakref.finalize(self, shutil.rmtree, self._sockets, ignore_errors=True)

    def start(self, folder: Path, argv: list[str]) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PYTHON"))}
        env.update(MARKETLAB_BACKEND="scripted", MARKETLAB_HOME=str(self._sockets / "home"), TQDM_DISABLE="1")
        return subprocess.Popen([sys.executable, "-I", *argv], cwd=folder, env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def stop(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream:
                stream.close()

    def socket_dir(self) -> Path:
        return self._sockets


class ModuleProcess:
    """Line-by-line JSON requests to a module served by marketlab.grading.serve_module."""

    def __init__(self, process: subprocess.Popen, deadline: float) -> None:
        self._process = process
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._ends = time.monotonic() + deadline
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        hello = self._reply()
        self.load_error: wire.RemoteError | None = None
        if not hello.get("ok"):
            error = hello.get("error") or {}
            self.load_error = wire.RemoteError(error.get("kind", "Error"), error.get("text", "it did not start"))

    def _read(self) -> None:
        stream = self._process.stdout
        assert stream is not None
        while True:
            try:
                line = stream.readline(wire.MAX_TEXT + 1)
            except (OSError, ValueError):  # the harness stopped the process and closed the pipe
                line = b""
            if not line:
                self._lines.put(None)
                return
            self._lines.put(line)

    def _drain_stderr(self) -> None:
        stream = self._process.stderr
        assert stream is not None
        try:
            while stream.read(65536):
                pass
        except (OSError, ValueError):  # closed by stop() while a read was pending
            pass

    def _reply(self, timeout: float = CALL_TIMEOUT_S) -> dict[str, Any]:
        left = min(timeout, self._ends - time.monotonic())
        try:
            line = self._lines.get(timeout=max(left, 0.01))
        except queue.Empty:
            raise wire.RemoteError("Timeout", "it did not answer in time (an endless loop?)") from None
        if line is None:
            raise wire.RemoteError("Stopped", "its Python process ended")
        reply = wire.loads(line.decode("utf-8", errors="replace"))
        if not isinstance(reply, dict):
            raise wire.WireError("the answer was not readable")
        return reply

    def request(self, request: dict[str, Any], timeout: float = CALL_TIMEOUT_S) -> Any:
        """Send one request; the decoded value, or RemoteError raised as the learner's code raised."""
        if self.load_error:
            raise self.load_error
        stdin = self._process.stdin
        assert stdin is not None
        try:
            stdin.write((json.dumps(wire.encode(request), allow_nan=True) + "\n").encode())
            stdin.flush()
        except (BrokenPipeError, OSError):
            raise wire.RemoteError("Stopped", "its Python process ended") from None
        return unpack(self._reply(timeout))

    def function(self, name: str) -> Callable[..., Any]:
        """A callable that calls `name` in the module."""
        return RemoteFunction(self.request, name)

    def describe(self, name: str, kind: str) -> Any:
        """A plain-data description of a module attribute (see marketlab.checks.extract)."""
        return self.request({"op": "describe", "name": name, "kind": kind})


class Missing(wire.RemoteError):
    """The learner's side has no object of that name."""


def unpack(reply: dict[str, Any]) -> Any:
    """The value of a reply, or the learner's error raised as RemoteError."""
    if reply.get("ok"):
        return wire.decode(reply.get("value"))
    if reply.get("missing"):
        raise Missing("NameError", "it is not defined")
    error = reply.get("error") or {}
    raise wire.RemoteError(error.get("kind", "Error"), error.get("text", ""))


class RemoteFunction:
    """Calls a learner's function across the wall: arguments out as data, the answer back as data."""

    def __init__(self, send: Callable[[dict[str, Any]], Any], name: str) -> None:
        self._send, self.__name__ = send, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._send({"op": "call", "name": self.__name__, "args": list(args), "kwargs": kwargs})

    def __repr__(self) -> str:
        return f"<learner function {self.__name__}>"


# --- the scripted model endpoint, served on a unix socket ------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _answer(self) -> None:
        import httpx2

        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(min(length, 4 * 1024 * 1024)) if length else b""
        request = httpx2.Request(self.command, f"http://grader{self.path}", content=body,
                                 headers={"content-type": self.headers.get("content-type", "application/json")})
        try:
            response = self.server.endpoint.handle_request(request)  # type: ignore[attr-defined]  # set by serve() below
        except httpx2.TimeoutException:
            time.sleep(self.server.timeout_hold)  # type: ignore[attr-defined]  # set by serve() below
            self.close_connection = True
            return
        content = response.read()
        self.send_response(response.status_code)
        for key, value in response.headers.items():
            if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                self.send_header(key, value)
        self.send_header("content-length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = _answer


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def serve(endpoint: Any, harness: Harness, *, timeout: float = 2.0, max_retries: int = 0) -> Iterator[wire.ClientSpec]:
    """Serve a ScriptedEndpoint on a unix socket the harness's processes can reach; yields the client spec."""
    # The socket is made in a new folder of its own, mode 0700 (mkdtemp), inside the harness's socket
    # folder, which the learner's processes cannot write (the grader's, read-only in the sandbox). While
    # that folder is still closed, the socket is opened to the sandbox's user; only then is the folder
    # opened for passing through (through its descriptor). No name the learner could have replaced is
    # ever changed: the critical finding of issue 21 was a chmod that followed a swapped-in link.
    folder = Path(tempfile.mkdtemp(prefix="endpoint-", dir=harness.socket_dir()))
    path = str(folder / "model.sock")
    server = _Server(path, _Handler)
    server.endpoint = endpoint  # type: ignore[attr-defined]  # the handler's endpoint, on its server
    server.timeout_hold = timeout + 0.5  # type: ignore[attr-defined]  # the handler's hold, on its server
    os.chmod(path, 0o777)  # in the closed folder made above: nobody else can have put anything there
    opened = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.fchmod(opened, 0o711)
    finally:
        os.close(opened)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield wire.ClientSpec(harness.inside(Path(path)), max_retries=max_retries, timeout=timeout)
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(folder, ignore_errors=True)


def socket_alive(path: str) -> bool:
    """True when something listens on the unix socket (used by tests)."""
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(path)
            return True
        except OSError:
            return False
