"""The batch runner through the real openai SDK, answered by the scripted endpoint."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx2
import pandas as pd
import pytest
from pydantic import BaseModel, Field

from marketlab import data, reference
from marketlab.llm.testing import Fault, ScriptedEndpoint, default_reply
from marketlab.workflow import (META_COLUMNS, Limits, RetryPolicy, Rules, RunSettings, WorkflowInputError,
                                WorkflowSettingsError, failure_report, run_batch, summarize)

FAST = RetryPolicy(base_delay=0.01, max_delay=0.05)


class Copy(BaseModel):
    headline: str = Field(max_length=60)
    description: str
    rating: int = Field(ge=1, le=5)


VALID = json.dumps({"headline": "Ready for the trail", "description": "Light and tough.", "rating": 4})


def build(record):
    return [{"role": "system", "content": "Write product copy."},
            {"role": "user", "content": f"Product: {record['name']}. Specs: {record['key_specs']}"}]


@pytest.fixture(autouse=True)
def _home(fresh_home: Path) -> Path:
    return fresh_home


@pytest.fixture
def products() -> pd.DataFrame:
    return data.load("products").head(6)


def run(df, endpoint, **kwargs):
    kwargs.setdefault("workers", 1)
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("progress", False)
    kwargs.setdefault("show_summary", False)
    kwargs.setdefault("cache", False)
    kwargs.setdefault("checkpoint", False)
    return run_batch(df, kwargs.pop("builder", build), kwargs.pop("schema", Copy), endpoint.client(),
                     "scripted", **kwargs)


def test_every_row_comes_back_in_input_order_with_fields_and_columns(products):
    shuffled = products.sample(frac=1, random_state=3).set_index("sku")
    out = run(shuffled, ScriptedEndpoint(), workers=3, include=["name"])
    assert list(out.index) == list(shuffled.index)
    assert list(out["name"]) == list(shuffled["name"])
    assert list(out.columns) == ["name", "headline", "description", "rating", *META_COLUMNS]
    assert set(out["status"]) == {"ok"} and (out["calls"] == 1).all()
    assert (out["prompt_tokens"] > 0).all() and (out["cost_usd"] == 0).all() and (out["latency_s"] >= 0).all()


@pytest.mark.parametrize(("fault", "status", "calls"), [
    (Fault.rate_limit(retry_after=0.01), "ok", 2),
    (Fault.server_error(), "ok", 2),
    (Fault.timeout(), "ok", 2),
    (Fault.malformed_json(), "repaired", 2),
    (Fault.truncated_json(), "repaired", 2),
])
def test_each_fault_kind_is_survived(products, fault, status, calls):
    endpoint = ScriptedEndpoint([fault])
    out = run(products.head(3), endpoint)
    assert list(out["status"]) == [status, "ok", "ok"]
    assert out["calls"].iloc[0] == calls and endpoint.calls == calls + 2
    assert out["headline"].notna().all()


@pytest.mark.parametrize(("fault", "kind"), [
    (Fault.rate_limit(retry_after=0.01), "rate_limit"), (Fault.server_error(), "server_error"),
    (Fault.timeout(), "timeout"),
])
def test_retries_are_the_runners_alone_and_then_the_row_is_marked_failed(products, fault, kind):
    endpoint = ScriptedEndpoint([fault] * 3)
    # The client would retry twice on its own; the runner switches that off, so 3 attempts = 3 requests.
    out = run(products.head(2), endpoint, retry=RetryPolicy(max_attempts=3, base_delay=0.01))
    first = out.iloc[0]
    assert (first["status"], first["error_kind"], first["calls"], first["retries"]) == ("failed", kind, 3, 2)
    assert "on all 3 tries" in first["error"] and "Fix:" in first["error"]
    assert endpoint.calls == 4 and out["status"].iloc[1] == "ok"


def test_malformed_twice_fails_with_a_plain_reason(products):
    out = run(products.head(2), ScriptedEndpoint([Fault.malformed_json(), Fault.malformed_json()]))
    assert out["status"].tolist() == ["failed", "ok"]
    assert out["error_kind"].iloc[0] == "invalid_json"
    assert "not valid JSON" in out["error"].iloc[0] and "after one repair attempt" in out["error"].iloc[0]
    assert pd.isna(out["headline"].iloc[0])


def test_the_repair_request_feeds_the_problem_back(products):
    bad = json.dumps({"headline": "x", "description": "y", "rating": 9})
    endpoint = ScriptedEndpoint([bad, VALID])
    out = run(products.head(1), endpoint)
    assert out["status"].iloc[0] == "repaired" and out["rating"].iloc[0] == 4
    repair = endpoint.requests[1]["messages"]
    assert repair[-2] == {"role": "assistant", "content": bad}
    assert "'rating' is 9; it must be at most 5" in repair[-1]["content"]


def test_rules_are_checked_in_python(products):
    too_long = json.dumps({"headline": "Unbeatable", "description": "word " * 30, "rating": 3})
    rules = Rules(max_words={"description": 20}, banned_words=("unbeatable",))
    out = run(products.head(1), ScriptedEndpoint([too_long, too_long]), rules=rules)
    error = out["error"].iloc[0]
    assert out["error_kind"].iloc[0] == "rules"
    assert "'description' has 30 words; the limit is 20" in error and "banned word 'unbeatable'" in error


def test_a_schema_the_model_cannot_meet_fails_every_row_with_the_reason(products):
    out = run(products.head(3), ScriptedEndpoint(), rules=Rules(min_words={"description": 50}))
    assert set(out["status"]) == {"failed"} and set(out["error_kind"]) == {"rules"}
    assert "at least 50 are needed" in out["error"].iloc[0]
    assert len(out) == 3


class TimedEndpoint(ScriptedEndpoint):
    """Records when each chat request arrived, how many were in flight at once, and the timeouts sent."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.arrivals: list[float] = []
        self.timeouts: list[dict] = []
        self.in_flight = self.most_in_flight = 0

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        with self._lock:
            self.arrivals.append(time.monotonic())
            self.timeouts.append(dict(request.extensions.get("timeout", {})))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return super().handle_request(request)
        finally:
            with self._lock:
                self.in_flight -= 1


def test_retry_after_is_honoured(products):
    endpoint = TimedEndpoint([Fault.rate_limit(retry_after=0.6)])
    out = run(products.head(1), endpoint, retry=RetryPolicy(base_delay=0.0))
    assert endpoint.arrivals[1] - endpoint.arrivals[0] >= 0.6
    assert out["status"].iloc[0] == "ok" and endpoint.calls == 2
    assert out["wait_s"].iloc[0] >= 0.6 and "Waiting: 0.6 s" in str(summarize(out))


def test_a_retry_after_longer_than_allowed_fails_the_row_at_once(products):
    endpoint = ScriptedEndpoint([Fault.rate_limit(retry_after=50)])
    out = run(products.head(1), endpoint, retry=RetryPolicy(max_retry_after=5))
    assert endpoint.calls == 1 and out["wait_s"].iloc[0] < 5
    assert out["error_kind"].iloc[0] == "rate_limit" and "asked to wait 50 s" in out["error"].iloc[0]


def test_a_429_pauses_every_worker_before_its_next_request(products):
    # rpm=300: the four workers' first requests are spaced 0.2 s apart; the first gets a 429 asking
    # for 1 s. Workers already waiting for their slot must see the pause too.
    endpoint = TimedEndpoint([Fault.rate_limit(retry_after=1.0)])
    out = run(products.head(4), endpoint, workers=4, rpm=300)
    assert (out["status"] == "ok").all()
    refused = endpoint.arrivals[0]
    during = [t - refused for t in endpoint.arrivals[1:] if 0.15 < t - refused < 0.95]
    assert not during, f"requests sent during the pause, at +{during} s"


def test_a_row_that_gives_up_on_429_still_holds_the_pause_for_the_others(products):
    endpoint = TimedEndpoint([Fault.rate_limit(retry_after=0.5)])
    out = run(products.head(2), endpoint, retry=RetryPolicy(max_attempts=1))
    assert out["status"].tolist() == ["failed", "ok"] and out["error_kind"].iloc[0] == "rate_limit"
    assert endpoint.arrivals[1] - endpoint.arrivals[0] >= 0.5


def test_requests_per_minute_cap_spaces_the_calls(products):
    endpoint = TimedEndpoint()
    run(products.head(4), endpoint, workers=4, rpm=300)  # one request every 0.2 s
    gaps = [b - a for a, b in zip(endpoint.arrivals, endpoint.arrivals[1:])]
    assert len(gaps) == 3 and min(gaps) >= 0.19


def test_workers_run_rows_concurrently(products):
    endpoint = TimedEndpoint(delay_s=0.3)
    out = run(products, endpoint, workers=3)
    assert endpoint.most_in_flight == 3 and (out["status"] == "ok").all()


def test_default_request_timeout_fits_a_notebook(products):
    endpoint = TimedEndpoint()
    run(products.head(1), endpoint)
    sent = endpoint.timeouts[0]
    assert sent["read"] == RunSettings().timeouts.read <= 20 and sent["connect"] == 5
    run(products.head(1), endpoint, request_timeout=60)
    assert endpoint.timeouts[1]["read"] == 60


def test_a_timed_out_row_says_so_in_the_summary(products):
    out = run(products.head(2), ScriptedEndpoint([Fault.timeout()] * 2), retry=RetryPolicy(max_attempts=2,
                                                                                          base_delay=0.6))
    text = str(summarize(out))
    assert out["error_kind"].iloc[0] == "timeout" and out["wait_s"].iloc[0] >= 0.6
    assert "got no answer within the 20 s time limit" in text and "Waiting:" in text


@pytest.mark.parametrize("workers", [1, 4])
def test_budget_stops_cleanly_and_marks_the_rest_skipped(workers):
    df = data.load("products").head(20)
    endpoint = ScriptedEndpoint()
    out = run(df, endpoint, workers=workers, max_tokens=50, token_budget=400)
    statuses = out["status"].tolist()
    done = statuses.count("ok")
    assert 0 < done < 20 and statuses == ["ok"] * done + ["skipped_budget"] * (20 - done)
    assert int(out["prompt_tokens"].sum() + out["completion_tokens"].sum()) <= 400
    assert endpoint.calls == done
    assert (out.loc[out["status"] == "skipped_budget", "error_kind"] == "budget").all()
    assert "budget" in out["error"].iloc[-1] and pd.isna(out["headline"].iloc[-1])
    assert "Stopped at the budget" in str(summarize(out))


def test_budget_stop_point_does_not_depend_on_concurrency():
    df = data.load("products").head(20)
    one = run(df, ScriptedEndpoint(), workers=1, max_tokens=50, token_budget=400)
    four = run(df, ScriptedEndpoint(), workers=4, max_tokens=50, token_budget=400)
    assert one["status"].tolist() == four["status"].tolist()


def build_long(record):
    """A house-style prompt of about 300 tokens that names the SKU."""
    messages = build(record)
    messages[0]["content"] += " Follow the house style guide closely." * 50
    messages[1]["content"] += f" SKU {record['sku']}."
    return messages


def _repair_every_third(body):
    """Malformed JSON for the first request of every third SKU; valid otherwise (repairs too)."""
    number = int(re.search(r"SKU RO-(\d+)", json.dumps(body["messages"])).group(1))
    is_repair = body["messages"][-2]["role"] == "assistant"
    return Fault.malformed_json() if number % 3 == 0 and not is_repair else default_reply(body)


def test_budget_accounting_is_exact_and_the_checkpoint_stays_for_a_larger_budget(tmp_path):
    # The reported case: 6,000 tokens, replies of up to 200 tokens, some needing a repair.
    df = data.load("products").head(20)
    path = tmp_path / "run.jsonl"
    endpoint = ScriptedEndpoint(responder=_repair_every_third)
    out = run(df, endpoint, builder=build_long, workers=4, max_tokens=200, token_budget=6000, checkpoint=path)
    assert {"ok", "repaired"} <= set(out["status"])
    statuses, kinds, calls = out["status"].tolist(), out["error_kind"].tolist(), out["calls"].tolist()
    assert int(out["prompt_tokens"].sum() + out["completion_tokens"].sum()) <= 6000
    assert "skipped_budget" in statuses
    first_stop = next(i for i, (s, k) in enumerate(zip(statuses, kinds)) if k == "budget")
    # Nothing after the stop point was sent, and every row after it is skipped_budget.
    assert all(c == 0 for c in calls[first_stop + 1:])
    assert set(statuses[first_stop + 1:]) == {"skipped_budget"}
    assert [i for i, k in enumerate(kinds) if k == "budget" and statuses[i] == "failed"] in ([], [first_stop])
    assert path.exists(), "a run cut by the budget keeps its checkpoint"
    assert "Checkpoint kept" in str(summarize(out))

    again_endpoint = ScriptedEndpoint(responder=_repair_every_third)
    again = run(df, again_endpoint, builder=build_long, workers=4, max_tokens=200, token_budget=60_000,
                checkpoint=path)
    assert set(again["status"]) <= {"ok", "repaired"} and not path.exists()
    finished = sum(s in ("ok", "repaired") for s in statuses)
    assert (again["source"] == "checkpoint").sum() == finished
    summary = summarize(again)
    assert summary.calls == again_endpoint.calls and summary.from_checkpoint == finished
    assert summary.restored_calls == sum(c for c, s in zip(calls, statuses) if s in ("ok", "repaired"))


def test_cost_budget_needs_a_price(products):
    with pytest.raises(WorkflowInputError, match="no price for the model"):
        run_batch(products, build, Copy, ScriptedEndpoint().client(), "house-model", cost_budget_usd=1.0,
                  progress=False, show_summary=False)
    out = run_batch(products, build, Copy, ScriptedEndpoint().client(), "house-model", cost_budget_usd=0.0002,
                    prices=(1.0, 2.0), max_tokens=50, progress=False, show_summary=False, cache=False,
                    checkpoint=False)
    assert out["cost_usd"].sum() <= 0.0002 and "skipped_budget" in set(out["status"])


def test_an_unchanged_rerun_makes_no_model_calls(products):
    endpoint = ScriptedEndpoint([Fault.malformed_json(), Fault.server_error()])
    first = run(products, endpoint, cache=True, workers=3)
    calls = endpoint.calls
    again = run(products, endpoint, cache=True, workers=3)
    assert endpoint.calls == calls
    assert (again["calls"] == 0).all() and set(again["source"]) == {"cache"}
    assert again["status"].tolist() == first["status"].tolist()
    assert again["headline"].tolist() == first["headline"].tolist()
    run(products, endpoint, cache=True, temperature=0.7)  # a changed parameter is a new request
    assert endpoint.calls == calls + len(products)


def test_cache_holds_no_messages_and_no_key(products, fresh_home):
    endpoint = ScriptedEndpoint()
    client = endpoint.client().with_options(api_key="sk-" + "live-TOPSECRET-0123456789")
    run_batch(products, build, Copy, client, "scripted", progress=False, show_summary=False)
    raw = b"".join(p.read_bytes() for p in (fresh_home / "workflow-cache").rglob("*") if p.is_file())
    assert raw and b"TOPSECRET" not in raw and products["name"].iloc[0].encode() not in raw


def test_another_server_with_the_same_model_name_is_not_answered_from_the_cache(products, tmp_path, monkeypatch):
    first = ScriptedEndpoint()
    run(products, first, cache=True)
    other = ScriptedEndpoint()
    elsewhere = other.client().with_options(base_url="http://other-server.invalid/v1")
    out = run_batch(products, build, Copy, elsewhere, "scripted", progress=False, show_summary=False,
                    checkpoint=False)
    assert other.calls == len(products) and set(out["source"]) == {"model"}
    monkeypatch.setenv("MARKETLAB_BACKEND", "scripted")  # same URL, another backend: a new key too
    again = ScriptedEndpoint()
    run(products, again, cache=True)
    assert again.calls == len(products)


def test_the_checkpoint_of_one_server_is_not_restored_for_another(products, tmp_path):
    path = tmp_path / "run.jsonl"

    def stop_at_3(record):
        if record["sku"] == products["sku"].iloc[3]:
            raise KeyboardInterrupt
        return build(record)

    with pytest.raises(KeyboardInterrupt):
        run(products, ScriptedEndpoint(), builder=stop_at_3, checkpoint=path)
    other = ScriptedEndpoint()
    elsewhere = other.client().with_options(base_url="http://other-server.invalid/v1")
    out = run_batch(products, build, Copy, elsewhere, "scripted", progress=False, show_summary=False,
                    cache=False, checkpoint=path)
    assert "checkpoint" not in set(out["source"]) and other.calls == len(products)


def test_the_cache_is_a_bounded_diskcache_shared_between_processes(tmp_path):
    import subprocess
    import sys

    import diskcache

    from marketlab.workflow import ResponseCache

    cache = ResponseCache(tmp_path / "c", size_limit_mb=8)
    assert isinstance(cache._cache, diskcache.Cache) and cache._cache.size_limit == 8 * 1024 * 1024
    code = ("from marketlab.workflow import ResponseCache; c = ResponseCache(%r); "
            "c.put('k', {'content': 'from the other process'}); c.close()" % str(tmp_path / "c"))
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert cache.get("k") == {"content": "from the other process"}
    cache.close()


def test_interrupted_run_resumes_without_redoing_finished_rows(products, fresh_home):
    endpoint = ScriptedEndpoint()
    interrupted = []

    def interrupt_at_row_4(record):
        if record["sku"] == products["sku"].iloc[4] and not interrupted:
            interrupted.append(True)
            raise KeyboardInterrupt
        return build(record)

    with pytest.raises(KeyboardInterrupt):
        run(products, endpoint, builder=interrupt_at_row_4, checkpoint=True)
    saved = list((fresh_home / "checkpoints").glob("*.jsonl"))
    assert len(saved) == 1 and len(saved[0].read_text().splitlines()) == 4 == endpoint.calls
    out = run(products, endpoint, builder=interrupt_at_row_4, checkpoint=True)
    assert len(out) == len(products) and (out["status"] == "ok").all()
    assert out["source"].tolist() == ["checkpoint"] * 4 + ["model"] * 2
    assert endpoint.calls == len(products)  # every row was sent exactly once over both runs
    assert not saved[0].exists()  # a finished run removes its checkpoint
    summary = summarize(out)
    assert (summary.calls, summary.sent, summary.from_checkpoint, summary.restored_calls) == (2, 2, 4, 4)
    text = str(summary)
    assert "This run: 2 model call(s) (0 retries) for 2 row(s) sent" in text
    assert "Restored from the checkpoint: 4 row(s), not sent again (an earlier run made their 4 call(s)" in text


def test_checkpoint_survives_a_half_written_line(products, tmp_path):
    path = tmp_path / "run.jsonl"
    endpoint = ScriptedEndpoint()

    def stop_at_3(record):
        if record["sku"] == products["sku"].iloc[3]:
            raise KeyboardInterrupt
        return build(record)

    with pytest.raises(KeyboardInterrupt):
        run(products, endpoint, builder=stop_at_3, checkpoint=path)
    with path.open("a") as handle:
        handle.write('{"key": "abc", "row": {"fiel')  # what a kill mid-write leaves
    out = run(products, endpoint, checkpoint=path)
    assert out["source"].tolist() == ["checkpoint"] * 3 + ["model"] * 3
    assert endpoint.calls == 6


def test_service_failures_are_not_checkpointed_so_a_resume_retries_them(products, tmp_path):
    path = tmp_path / "run.jsonl"
    endpoint = ScriptedEndpoint([Fault.server_error()] * 2)

    def stop_at_2(record):
        if record["sku"] == products["sku"].iloc[2]:
            raise KeyboardInterrupt
        return build(record)

    with pytest.raises(KeyboardInterrupt):
        run(products, endpoint, builder=stop_at_2, checkpoint=path, retry=RetryPolicy(max_attempts=2, base_delay=0))
    assert len(path.read_text().splitlines()) == 1  # row 0 failed on the service: not kept
    out = run(products, endpoint, checkpoint=path)
    assert (out["status"] == "ok").all() and out["source"].tolist()[:2] == ["model", "checkpoint"]


# -- bad input -------------------------------------------------------------------------------

def test_settings_are_one_validated_value_and_keywords_map_onto_it(products):
    built = RunSettings.build(workers=2, token_budget=500, include=["sku"], request_timeout=9, cache=False)
    assert built == RunSettings(include=("sku",), limits=Limits(workers=2), budget={"tokens": 500},
                                timeouts={"read": 9}, storage={"cache": False})
    assert RunSettings.build(built, workers=3).limits.workers == 3 and built.limits.workers == 2
    endpoint = ScriptedEndpoint()
    out = run(products.head(2), endpoint, settings=RunSettings(include=("sku",), max_tokens=50))
    assert list(out["sku"]) == list(products["sku"].head(2)) and endpoint.requests[0]["max_tokens"] == 50
    assert eval(built.source(), vars(__import__("marketlab.workflow").workflow)) == built  # noqa: S307


@pytest.mark.parametrize(("options", "words"), [
    ({"workers": 0}, "Use a number at least 1"),
    ({"token_budget": -5}, "Use a number at least 0"),
    ({"request_timeout": 0}, "Use a number more than 0"),
    ({"wokers": 4}, "'wokers' is not a setting of run_batch"),
])
def test_bad_settings_get_a_clear_error(products, options, words):
    with pytest.raises(WorkflowSettingsError) as caught:
        run(products, ScriptedEndpoint(), **options)
    assert words in str(caught.value) and caught.value.fix
    with pytest.raises(WorkflowSettingsError):
        Limits(workers=-1)


def test_every_error_class_has_the_one_base_and_keeps_its_builtin():
    from marketlab.artifacts import ArtifactError, ArtifactNotFoundError
    from marketlab.brief import BriefError
    from marketlab.data import DataError
    from marketlab.errors import MarketlabError

    for cls, builtin in ((WorkflowInputError, ValueError), (WorkflowSettingsError, ValueError),
                         (BriefError, ValueError), (DataError, ValueError), (ArtifactError, ValueError),
                         (ArtifactNotFoundError, FileNotFoundError)):
        assert issubclass(cls, MarketlabError) and issubclass(cls, builtin), cls
        err = cls("what is wrong", "what to do")
        assert str(err) == "what is wrong\nHow to fix: what to do" and err._render_traceback_()[0].startswith("❌")


def test_missing_column_is_an_up_front_error_naming_it(products):
    with pytest.raises(WorkflowInputError) as caught:
        run(products.drop(columns=["key_specs"]), ScriptedEndpoint())
    message = str(caught.value)
    assert "needs a column 'key_specs'" in message and "How to fix" in message and "'name'" in message


@pytest.mark.parametrize(("df", "words"), [
    (pd.DataFrame(columns=["name", "key_specs"]), "no rows"),
    ([{"name": "x"}], "not a pandas DataFrame"),
])
def test_empty_or_wrong_table_is_refused_with_a_fix(df, words):
    with pytest.raises(WorkflowInputError, match=words):
        run(df, ScriptedEndpoint())


def test_wrong_schema_and_builder_are_refused(products):
    with pytest.raises(WorkflowInputError, match="not a pydantic model class"):
        run(products, ScriptedEndpoint(), schema=Copy(headline="a", description="b", rating=1))

    class Clash(BaseModel):
        status: str

    with pytest.raises(WorkflowInputError, match="needs for its own columns"):
        run(products, ScriptedEndpoint(), schema=Clash)
    with pytest.raises(WorkflowInputError, match="not a list of messages"):
        run(products, ScriptedEndpoint(), builder=lambda record: "Write copy")
    with pytest.raises(WorkflowInputError, match="no brief was given"):
        run(products, ScriptedEndpoint(), builder=reference.build_messages)


def test_a_non_string_field_fails_that_row_only_with_a_hint(products):
    df = products.copy()
    df["name"] = df["name"].astype(object)
    df.loc[df.index[2], "name"] = 12.5

    def strict(record):
        return [{"role": "user", "content": "Write copy for " + record["name"].strip()}]

    out = run(df, ScriptedEndpoint(), builder=strict)
    assert out["status"].tolist() == ["ok", "ok", "failed", "ok", "ok", "ok"]
    assert out["error_kind"].iloc[2] == "input"
    assert "AttributeError" in out["error"].iloc[2] and "str(value)" in out["error"].iloc[2]


def test_message_content_that_is_not_text_fails_the_row(products):
    df = products.copy()
    df["weight_g"] = df["weight_g"].astype("float")
    out = run(df, ScriptedEndpoint(), builder=lambda r: [{"role": "user", "content": r["weight_g"]}])
    assert set(out["status"]) == {"failed"} and "not text" in out["error"].iloc[0]


def test_brief_builders_get_the_brief(products):
    endpoint = ScriptedEndpoint()
    out = run(products.head(2), endpoint, builder=reference.build_messages, brief=reference.load_brief())
    assert (out["status"] == "ok").all()
    assert "careful copywriter" in endpoint.requests[0]["messages"][0]["content"]
    # The schema instruction is shared by every row, so it ends the system message, before the row's data.
    assert "Reply with one JSON object" in endpoint.requests[0]["messages"][0]["content"]
    assert "Reply with one JSON object" not in endpoint.requests[0]["messages"][-1]["content"]


# -- fatal errors and secrets ------------------------------------------------------------------

class RejectingEndpoint(ScriptedEndpoint):
    """Answers every chat request with 401, quoting part of the key as some providers do."""

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append({})
        key = request.headers.get("authorization", "")[7:]
        return httpx2.Response(401, json={"error": {"message": f"Incorrect API key provided: {key}",
                                                    "type": "invalid_request_error", "code": "invalid_api_key"}})


def test_a_rejected_key_stops_the_run_and_nothing_leaks(products, fresh_home):
    secret = "sk-" + "live-TOPSECRET-0123456789"
    endpoint = RejectingEndpoint()
    client = endpoint.client().with_options(api_key=secret)

    def leaky(record):
        if record["sku"] == products["sku"].iloc[0]:
            raise ValueError(f"could not use key {secret}")
        return build(record)

    out = run_batch(products, leaky, Copy, client, "scripted", workers=2, progress=False, show_summary=False,
                    checkpoint=fresh_home / "run.jsonl")
    assert len(out) == len(products) and set(out["status"]) == {"failed"}
    assert endpoint.calls <= 2  # stops sending once the key is known to be rejected
    assert "rejected the key (HTTP 401: invalid_api_key)" in out["error"].iloc[1]
    text = out.to_csv() + str(summarize(out)) + "".join(p.read_text(errors="ignore")
                                                        for p in fresh_home.rglob("*") if p.is_file())
    assert secret not in text and "TOPSECRET" not in text


def test_summary_and_failure_report_in_plain_words(products):
    out = run(products, ScriptedEndpoint([Fault.malformed_json(), Fault.malformed_json()]))
    summary = summarize(out)
    text = str(summary)
    assert summary.statuses == {"ok": 5, "repaired": 0, "failed": 1, "skipped_budget": 0}
    assert summary.failures == {"invalid_json": 1} and summary.calls == 7 and summary.lost == 0
    assert "6 rows" in text and "1 failed" in text and "1 × the reply was not valid JSON" in text
    report = failure_report(out, columns=("headline",))
    assert len(report) == 1 and report["what_it_means"].iloc[0] == "the reply was not valid JSON"
    with pytest.raises(WorkflowInputError, match="not a workflow output"):
        summarize(products)


def test_a_timeout_names_this_runs_own_time_limit_and_max_tokens() -> None:
    """Issue 26: the advice read 'raise the time limit (request_timeout=60) or lower max_tokens=.'"""
    from pydantic import BaseModel

    from marketlab.llm.testing import Fault, ScriptedEndpoint
    from marketlab.workflow import RetryPolicy

    class Line(BaseModel):
        text: str

    endpoint = ScriptedEndpoint([Fault.timeout()] * 20)
    out = run_batch(pd.DataFrame({"name": ["tent"]}), lambda row: [{"role": "user", "content": row["name"]}], Line,
                    endpoint.client(max_retries=0), model="scripted", request_timeout=45, max_tokens=80,
                    retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02), show_summary=False,
                    cache=False, checkpoint=False, progress=False)
    error = out["error"].iloc[0]
    assert out["status"].iloc[0] == "failed" and "request_timeout=90, now 45" in error and "(now 80)" in error
