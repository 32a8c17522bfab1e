"""A fake of OpenAI's Files and Batches API, in process, behind the real openai SDK, with batch faults.

    api = FakeBatchAPI(responder=lambda body: copy_reply(product_name(body)), answer_first=2)
    client = api.client()   # a real openai.OpenAI; /files, /batches and /chat/completions answer here

Each request of a batch is answered by a ScriptedEndpoint (the same replies as the scripted
backend). Faults, as the provider reports them:
- answer_first=N: the batch ends "expired" after answering N requests; the others are in the
  error file with code batch_expired (OpenAI's wording), as after a 24-hour window ran out;
- fail=predicate(body): those requests come back in the error file with HTTP 500 (a partly failed batch).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx2
import openai

from marketlab.llm.testing import ScriptedEndpoint

BASE_URL = "http://fake-batches.invalid/v1"
EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."


class FakeBatchAPI(httpx2.BaseTransport):
    """Files, batches and chat completions of one fake provider."""

    def __init__(self, responder: Callable[[dict], Any], answer_first: int | None = None,
                 fail: Callable[[dict], bool] | None = None) -> None:
        self.chat = ScriptedEndpoint(responder=responder)
        self.answer_first, self.fail = answer_first, fail
        self.files: dict[str, str] = {}
        self.batches: dict[str, dict[str, Any]] = {}

    def client(self) -> openai.OpenAI:
        """A real openai.OpenAI whose requests this fake answers."""
        return openai.OpenAI(api_key="sk-fake-batches", base_url=BASE_URL, max_retries=0,
                             http_client=httpx2.Client(transport=self))

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path.removeprefix("/v1")
        if request.method == "POST" and path == "/chat/completions":
            return self.chat.handle_request(request)
        if request.method == "POST" and path == "/files":
            lines = re.findall(rb'^\{"custom_id".*$', request.read(), re.M)
            file_id = f"file-{uuid.uuid4().hex[:12]}"
            self.files[file_id] = b"\n".join(lines).decode("utf-8")
            return httpx2.Response(200, json={"id": file_id, "object": "file", "bytes": len(self.files[file_id]),
                                              "created_at": 0, "filename": "input.jsonl", "purpose": "batch",
                                              "status": "processed"})
        if request.method == "POST" and path == "/batches":
            body = json.loads(request.read())
            return httpx2.Response(200, json=self._run(body))
        found = re.fullmatch(r"/batches/([^/]+)", path)
        if request.method == "GET" and found and found.group(1) in self.batches:
            return httpx2.Response(200, json=self.batches[found.group(1)])
        found = re.fullmatch(r"/files/([^/]+)/content", path)
        if request.method == "GET" and found and found.group(1) in self.files:
            return httpx2.Response(200, content=self.files[found.group(1)].encode("utf-8"))
        return httpx2.Response(404, json={"error": {"message": f"No such thing: {request.method} {path}",
                                                    "type": "invalid_request_error", "param": None, "code": None}})

    def _answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.fail is not None and self.fail(body):
            return 500, {"error": {"message": "The server had an error while processing your request.",
                                   "type": "server_error", "param": None, "code": None}}
        reply = self.chat.handle_request(httpx2.Request("POST", f"{BASE_URL}/chat/completions", json=body))
        return reply.status_code, json.loads(reply.read())

    def _run(self, create: dict[str, Any]) -> dict[str, Any]:
        """Run a batch at once, to its end: completed, or expired after answer_first requests."""
        items = [json.loads(line) for line in self.files[create["input_file_id"]].splitlines() if line.strip()]
        out, errors = [], []
        for number, item in enumerate(items):
            if self.answer_first is not None and number >= self.answer_first:
                errors.append({"id": f"batch_req_{number}", "custom_id": item["custom_id"], "response": None,
                               "error": {"code": "batch_expired", "message": EXPIRED_MESSAGE}})
                continue
            status, body = self._answer(item["body"])
            line = {"id": f"batch_req_{number}", "custom_id": item["custom_id"],
                    "response": {"status_code": status, "request_id": f"req_{number}", "body": body}, "error": None}
            (out if status == 200 else errors).append(line)
        batch_id = f"batch_{uuid.uuid4().hex[:12]}"
        ids = {}
        for name, lines in (("output", out), ("error", errors)):
            if lines:
                ids[name] = f"file-{uuid.uuid4().hex[:12]}"
                self.files[ids[name]] = "\n".join(json.dumps(line) for line in lines) + "\n"
        self.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": create["endpoint"], "errors": None,
            "input_file_id": create["input_file_id"], "completion_window": create["completion_window"],
            "status": "expired" if self.answer_first is not None and len(items) > self.answer_first else "completed",
            "output_file_id": ids.get("output"), "error_file_id": ids.get("error"), "created_at": 0,
            "request_counts": {"total": len(items), "completed": len(out), "failed": len(errors)},
            "metadata": create.get("metadata")}
        return self.batches[batch_id]
