"""The embedded server's Batch API: OpenAI's objects and errors through the real SDK, answered in the background.

Against the real local server over HTTP (the session fixture), except the restart case, which
runs the batch service in-process so that it can be stopped half-way without stopping the
session's server.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import openai
import pytest

from marketlab import llm
from marketlab.llm.batches import BatchService

ENDPOINT = "/v1/chat/completions"


@pytest.fixture
def server(local_base_url) -> openai.OpenAI:
    return openai.OpenAI(base_url=local_base_url, api_key="local-no-key-needed", max_retries=0)


def _line(custom_id: str, content: str, model: str | None = None, max_tokens: int = 5) -> dict:
    return {"custom_id": custom_id, "method": "POST", "url": ENDPOINT,
            "body": {"model": model or llm.model_name(), "max_tokens": max_tokens, "temperature": 0,
                     "messages": [{"role": "user", "content": content}]}}


def _upload(server: openai.OpenAI, lines: list[dict] | bytes) -> str:
    data = lines if isinstance(lines, bytes) else "".join(json.dumps(line) + "\n" for line in lines).encode()
    return server.files.create(file=("requests.jsonl", data), purpose="batch").id


def _wait(server: openai.OpenAI, batch_id: str, limit_s: float = 300) -> object:
    deadline = time.monotonic() + limit_s
    while True:
        batch = server.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch
        assert time.monotonic() < deadline, f"batch {batch_id} still {batch.status}"
        time.sleep(0.2)


def test_a_batch_answers_each_line_in_openai_shapes(server):
    bad = _line("no-messages", "Hi")
    bad["body"]["messages"] = []
    file_id = _upload(server, [_line("good", "Say hello."), bad])
    uploaded = server.files.retrieve(file_id)
    assert uploaded.purpose == "batch" and uploaded.bytes > 0
    batch = server.batches.create(input_file_id=file_id, endpoint=ENDPOINT, completion_window="24h",
                                  metadata={"who": "test"})
    assert batch.status == "validating" and batch.metadata == {"who": "test"}
    done = _wait(server, batch.id)
    assert done.status == "completed"
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (2, 1, 1)
    good = [json.loads(line) for line in server.files.content(done.output_file_id).text.splitlines()]
    assert [g["custom_id"] for g in good] == ["good"] and good[0]["response"]["status_code"] == 200
    reply = good[0]["response"]["body"]
    assert reply["object"] == "chat.completion" and reply["usage"]["completion_tokens"] <= 5
    assert done.usage.input_tokens == reply["usage"]["prompt_tokens"]
    failed = [json.loads(line) for line in server.files.content(done.error_file_id).text.splitlines()]
    assert failed[0]["custom_id"] == "no-messages" and failed[0]["response"]["status_code"] == 400
    assert failed[0]["response"]["body"]["error"]["param"] == "messages"
    assert done.id in [b.id for b in server.batches.list(limit=100).data]


def test_an_invalid_input_file_fails_the_batch_with_the_lines_named(server):
    lines = [_line("a", "x"), _line("a", "y"), _line("b", "z", model="other-model")]
    data = b"not json\n" + "".join(json.dumps(line) + "\n" for line in lines).encode()
    batch = server.batches.create(input_file_id=_upload(server, data), endpoint=ENDPOINT, completion_window="24h")
    done = _wait(server, batch.id, 30)
    assert done.status == "failed" and done.output_file_id is None
    codes = {(e.code, e.line) for e in done.errors.data}
    assert ("invalid_json_line", 1) in codes and ("duplicate_custom_id", 3) in codes
    assert "mismatched_model" in {code for code, _ in codes}


def test_bad_requests_get_openai_errors(server):
    with pytest.raises(openai.BadRequestError) as wrong_purpose:
        server.files.create(file=("x.jsonl", b"{}"), purpose="fine-tune")
    assert wrong_purpose.value.body["param"] == "purpose"
    file_id = _upload(server, [_line("a", "x")])
    with pytest.raises(openai.BadRequestError) as wrong_endpoint:
        server.batches.create(input_file_id=file_id, endpoint="/v1/embeddings", completion_window="24h")
    assert wrong_endpoint.value.body["param"] == "endpoint"
    with pytest.raises(openai.NotFoundError):
        server.batches.retrieve("batch_does_not_exist")
    with pytest.raises(openai.NotFoundError):
        server.files.content("file-does-not-exist")
    with pytest.raises(openai.NotFoundError):
        server.batches.create(input_file_id="file-does-not-exist", endpoint=ENDPOINT, completion_window="24h")


@pytest.mark.slow
def test_a_chat_request_is_answered_while_a_batch_runs_and_a_cancel_keeps_what_was_answered(server):
    lines = [_line(f"row-{i}", f"Write a sentence about tents, number {i}.", max_tokens=40) for i in range(6)]
    batch = server.batches.create(input_file_id=_upload(server, lines), endpoint=ENDPOINT, completion_window="24h")
    reply = server.chat.completions.create(model=llm.model_name(), max_tokens=3,
                                           messages=[{"role": "user", "content": "Hi"}])
    assert reply.choices[0].message.content is not None
    assert server.batches.retrieve(batch.id).status != "completed"  # the chat request did not wait for the batch
    cancelled = server.batches.cancel(batch.id)
    assert cancelled.status == "cancelling"
    done = _wait(server, batch.id)
    assert done.status == "cancelled"
    answered = [json.loads(x)["custom_id"] for x in server.files.content(done.output_file_id).text.splitlines()] \
        if done.output_file_id else []
    errors = [json.loads(x) for x in server.files.content(done.error_file_id).text.splitlines()]
    assert sorted(answered + [e["custom_id"] for e in errors]) == sorted(line["custom_id"] for line in lines)
    assert {e["error"]["code"] for e in errors} == {"batch_cancelled"} and len(answered) < len(lines)
    with pytest.raises(openai.ConflictError):
        server.batches.cancel(batch.id)


def test_a_batch_stopped_with_its_server_carries_on_at_the_next_start(tmp_path: Path):
    answered: list[str] = []

    def service(stopping: threading.Event, stop_after: int | None) -> BatchService:
        async def answer(body: dict) -> tuple[int, dict]:
            answered.append(body["messages"][0]["content"])
            if stop_after is not None and len(answered) >= stop_after:
                stopping.set()  # as SIGTERM does: the request in progress is not recorded
            return 200, {"object": "chat.completion", "usage": {"prompt_tokens": 1, "completion_tokens": 1}}

        return BatchService(tmp_path, answer, stopping)

    async def first_life() -> str:
        batches = service(threading.Event(), stop_after=3)
        lines = "".join(json.dumps(_line(f"r{i}", f"row {i}", model="m")) + "\n" for i in range(5)).encode()
        batch = batches.create_batch({"input_file_id": batches.add_file(lines, "in.jsonl", "batch")["id"],
                                      "endpoint": ENDPOINT, "completion_window": "24h"})
        await asyncio.sleep(0.2)
        await batches.close()
        return batch["id"]

    async def second_life(batch_id: str) -> dict:
        batches = service(threading.Event(), stop_after=None)
        assert batches.batch(batch_id)["status"] == "in_progress"
        batches.resume()
        while batches.batch(batch_id)["status"] != "completed":
            await asyncio.sleep(0.01)
        return batches.batch(batch_id)

    batch_id = asyncio.run(first_life())
    assert answered == ["row 0", "row 1", "row 2"]
    done = asyncio.run(second_life(batch_id))
    assert answered[3:] == ["row 2", "row 3", "row 4"]  # row 2 was cut off by the stop: answered again
    lines = (tmp_path / "files" / f"{done['output_file_id']}.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["custom_id"] for line in lines) == [f"r{i}" for i in range(5)]
    assert done["request_counts"] == {"total": 5, "completed": 5, "failed": 0}
