"""Which local model server a marketlab home uses and stops: only its own; and a stop really stops."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from marketlab import llm
from marketlab.llm import config, local
from marketlab.llm.errors import PortTakenError
from tests.support.fake_http import JSONHandler, serving

# A reply the grammar keeps going for thousands of tokens, whatever the model would rather do.
LONG_REPLY = {"type": "json_schema", "json_schema": {"name": "story", "schema": {
    "type": "object", "properties": {"story": {"type": "string", "minLength": 2000}},
    "required": ["story"], "additionalProperties": False}}}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def _wait_for(condition, what: str, limit_s: float = 120.0) -> None:
    """Poll until `condition()` holds (a wait with a safety limit, not a timing assertion)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def other_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Another MARKETLAB_HOME, as another user or checkout would have; its servers are stopped by pid."""
    home = tmp_path / "other-home"
    home.mkdir()
    monkeypatch.setenv("MARKETLAB_HOME", str(home))
    yield home
    state = json.loads((home / "server.json").read_text()) if (home / "server.json").exists() else None
    if state and local._alive(int(state["pid"])) and local._health(int(state["port"])):
        if local._health(int(state["port"]))["home"] == str(home.resolve()):
            os.kill(int(state["pid"]), signal.SIGKILL)


def test_another_homes_server_on_an_explicit_port_is_a_clear_error(local_base_url, other_home):
    # MARKETLAB_PORT (set for the session) is where the session's server runs; this home did not start it.
    with pytest.raises(PortTakenError) as caught:
        local.ensure_server()
    assert "another marketlab home" in caught.value.problem
    assert "MARKETLAB_PORT" in caught.value.fix and "How to fix" in str(caught.value)
    assert local.status() is None and not (other_home / "server.json").exists()


def test_another_homes_server_on_the_default_port_gets_a_server_of_its_own(local_base_url, other_home, monkeypatch):
    session_port = _port_of(local_base_url)
    session_pid = local._health(session_port)["pid"]
    monkeypatch.delenv("MARKETLAB_PORT")
    monkeypatch.setattr(config, "DEFAULT_PORT", session_port)
    url = local.ensure_server()
    own = local._health(_port_of(url))
    assert _port_of(url) != session_port
    assert own["home"] == str(other_home.resolve()) and own["prefix"] == sys.prefix
    assert [m.id for m in llm.client().models.list()] == [llm.model_name()]

    result = local.stop_server()
    assert result.outcome == "stopped" and result.pid == own["pid"] and not local._alive(own["pid"])
    assert local._health(session_port)["pid"] == session_pid  # the session's server was left alone


def test_stop_leaves_another_homes_server_running_even_with_its_state_file(local_base_url, tmp_path, monkeypatch):
    state = json.loads(config.server_state_path().read_text())
    home = tmp_path / "copy"
    home.mkdir()
    (home / "server.json").write_text(json.dumps(state))  # copied, token and pid included
    monkeypatch.setenv("MARKETLAB_HOME", str(home))
    assert local.ensure_server() == state["url"]  # a state file handed over on purpose may be used...
    result = local.stop_server()
    assert result.outcome == "not_ours" and "left running" in result.message  # ...but not to stop it
    assert local._health(state["port"])["pid"] == state["pid"]
    done = subprocess.run([sys.executable, "-m", "marketlab", "serve", "--stop"], capture_output=True, text=True)
    assert done.returncode == 1 and "Stopped" not in done.stdout
    assert local._health(state["port"])["pid"] == state["pid"]


class _OtherCheckout(JSONHandler):
    """A marketlab server of another checkout (another venv), reporting a pid that is not a server."""

    health: dict = {}

    def do_GET(self) -> None:  # noqa: N802
        self.reply(200, self.health)


@pytest.mark.model
def test_a_server_of_another_checkout_is_neither_used_nor_stopped(other_home, monkeypatch):
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    _OtherCheckout.health = {"service": "marketlab-local", "status": "ok", "pid": bystander.pid,
                             "prefix": "/elsewhere/checkout/.venv", "home": str(other_home.resolve()), "token": "t0k3n"}
    try:
        with serving(_OtherCheckout) as base:
            port = _port_of(base)
            monkeypatch.setenv("MARKETLAB_PORT", str(port))
            (other_home / "server.json").write_text(json.dumps({"port": port, "url": local.base_url(port),
                                                                "pid": bystander.pid, "token": "t0k3n"}))
            assert local.status() is None
            with pytest.raises(PortTakenError) as caught:
                local.ensure_server()
            assert "another marketlab installation" in caught.value.problem
            result = local.stop_server()
        assert result.outcome == "not_ours" and not result
        assert bystander.poll() is None, "stop_server signalled a process this home did not start"
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.model
def test_stop_during_a_long_request_stops_generation_and_says_so(other_home, monkeypatch):
    monkeypatch.setenv("MARKETLAB_PORT", str(_free_port()))
    local.ensure_server()
    state = local.read_state()
    outcome: dict[str, object] = {}

    def long_request() -> None:
        try:
            llm.client(max_retries=0, timeout=600).chat.completions.create(
                model=llm.model_name(), max_tokens=3000, temperature=0, response_format=LONG_REPLY,
                messages=[{"role": "user", "content": "Write a very long story about a tent."}])
            outcome["reply"] = "complete"
        except openai.APIError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=long_request)
    thread.start()
    try:
        _wait_for(lambda: (local._health(state["port"]) or {}).get("busy"), "the request to reach the server")
        result = local.stop_server()
        assert result.outcome == "stopped", result.message
        assert "cut off" in result.message
        assert not local._alive(state["pid"]), "said 'Stopped' while the server still runs"
        thread.join(120)
        assert "reply" not in outcome
        error = outcome["error"]
        assert isinstance(error, openai.InternalServerError) and error.status_code == 503
        assert error.code == "server_stopping" and "marketlab serve --stop" in error.message
    finally:
        if local._alive(state["pid"]):
            os.kill(state["pid"], signal.SIGKILL)
        thread.join(120)


@pytest.mark.model
def test_stop_stops_a_server_too_busy_to_answer_its_health_check(other_home, monkeypatch):
    """A server busy with a class's queue can miss /health's time limit: it is still this home's, and stops."""
    monkeypatch.setenv("MARKETLAB_PORT", str(_free_port()))
    local.ensure_server()
    state = local.read_state()
    os.kill(state["pid"], signal.SIGSTOP)  # alive, holding its port, answering nothing
    try:
        assert local._health(state["port"], timeout=0.5) is None
        resume = threading.Timer(3.0, os.kill, (state["pid"], signal.SIGCONT))
        resume.start()
        result = local.stop_server()
        resume.join()
        assert result.outcome == "stopped", result.message
        assert not local._alive(state["pid"]), "the hub or `serve --stop` would leave this server running"
    finally:
        if local._alive(state["pid"]):
            os.kill(state["pid"], signal.SIGCONT)
            os.kill(state["pid"], signal.SIGKILL)


def test_stop_never_signals_a_process_that_took_a_dead_servers_pid(other_home, monkeypatch):
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        (other_home / "server.json").write_text(json.dumps({"port": _free_port(), "url": "x", "pid": bystander.pid,
                                                            "token": "t0k3n"}))
        result = local.stop_server()
        assert result.outcome == "not_running"
        assert bystander.poll() is None, "stop_server signalled a process that is not this home's server"
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.model
def test_a_request_whose_client_gave_up_stops_generating(other_home, monkeypatch):
    """A client-side timeout frees the model at once: retries never queue behind an abandoned answer."""
    monkeypatch.setenv("MARKETLAB_PORT", str(_free_port()))
    local.ensure_server()
    state = local.read_state()
    outcome: dict[str, object] = {}

    def impatient() -> None:
        try:
            llm.client(max_retries=0, timeout=3).chat.completions.create(
                model=llm.model_name(), max_tokens=3000, temperature=0, response_format=LONG_REPLY,
                messages=[{"role": "user", "content": "Write a very long story about a tent."}])
            outcome["reply"] = "complete"
        except openai.APIError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=impatient)
    try:
        thread.start()
        _wait_for(lambda: (local._health(state["port"]) or {}).get("busy"), "the request to reach the server")
        thread.join(60)
        assert isinstance(outcome.get("error"), openai.APITimeoutError), outcome
        gave_up = time.monotonic()
        _wait_for(lambda: (local._health(state["port"]) or {}).get("busy") == 0, "the model to be free again", 20)
        assert time.monotonic() - gave_up < 20
        reply = llm.client(max_retries=0, timeout=120).chat.completions.create(
            model=llm.model_name(), max_tokens=5, temperature=0, messages=[{"role": "user", "content": "Hi"}])
        assert reply.choices[0].message.content is not None, "the next request is answered"
    finally:
        local.stop_server()
        thread.join(60)


def test_stop_with_nothing_running_says_so(other_home):
    done = subprocess.run([sys.executable, "-m", "marketlab", "serve", "--stop"], capture_output=True, text=True)
    assert done.returncode == 0 and "No local model server was running" in done.stdout
