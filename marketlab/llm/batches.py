"""The Batch API of the embedded server: uploaded JSONL files, and batches answered in the background.

    POST /v1/files (purpose=batch)   GET /v1/files/{id}   GET /v1/files/{id}/content
    POST /v1/batches   GET /v1/batches   GET /v1/batches/{id}   POST /v1/batches/{id}/cancel

Objects and errors have OpenAI's shapes, so `client.files.create`, `client.batches.create` and
`client.batches.retrieve` work unchanged. Files and batches live on disk in the server's marketlab
home (batch-api/): a batch outlives the client that sent it, and a server stopped in the middle
of a batch carries on where it was when it starts again. Each request of a batch is answered by
`answer` (the server runs it on its one model thread, in turn with interactive requests).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any

from .protocol import OpenAIError

MAX_FILE_BYTES = 200 * 1024 * 1024  # OpenAI's limit for a batch input file
MAX_REQUESTS = 50_000  # OpenAI's limit of requests per batch
COMPLETION_WINDOW_S = 24 * 3600
ENDPOINTS = ("/v1/chat/completions",)
FILE_PURPOSES = ("batch",)
MAX_LISTED_ERRORS = 20
TERMINAL = ("completed", "failed", "expired", "cancelled")
SAVE_EVERY_S = 0.5  # how often the request counts of a running batch are written to disk

# One batch request's answer: (HTTP status, the response body as OpenAI would send it).
Answer = Callable[[dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]]


def _new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data), encoding="utf-8")
    partial.replace(path)


def not_found(kind: str, object_id: str, param: str = "id") -> OpenAIError:
    """OpenAI's 404 for an unknown file or batch id."""
    return OpenAIError(404, f"No such {kind}: {object_id}", param=param, code=None)


@dataclass(frozen=True)
class Upload:
    """One part of a multipart/form-data body."""

    filename: str | None
    data: bytes


def parse_multipart(body: bytes, content_type: str) -> dict[str, Upload]:
    """The parts of a multipart/form-data body by field name (the standard library's MIME parser reads it)."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        raise OpenAIError(400, "Upload the file as multipart/form-data with the fields 'file' and 'purpose' "
                          "(client.files.create(file=..., purpose='batch') does this).")
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
                                                  + body)
    parts: dict[str, Upload] = {}
    for part in message.iter_parts() if message.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        if name:
            payload = part.get_payload(decode=True)  # bytes for a leaf part (a multipart one is not a file field)
            parts[str(name)] = Upload(part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return parts


@dataclass(frozen=True)
class Line:
    """One request of a batch input file."""

    number: int
    custom_id: str
    body: dict[str, Any]


def read_lines(data: bytes, endpoint: str) -> tuple[list[Line], list[dict[str, Any]]]:
    """The requests of a batch input file and, when it is not valid, OpenAI-style errors (code, message, line)."""
    lines: list[Line] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    models: set[str] = set()

    def fail(code: str, message: str, number: int | None, param: str | None = None) -> None:
        errors.append({"code": code, "message": message, "param": param, "line": number})

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        fail("invalid_file_format", "The input file is not UTF-8 text.", None)
        return [], errors
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            fail("invalid_json_line", f"Line {number} is not valid JSON.", number)
            continue
        if not isinstance(item, dict):
            fail("invalid_json_line", f"Line {number} is not a JSON object.", number)
            continue
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            fail("missing_required_parameter", f"Line {number} has no custom_id.", number, "custom_id")
            continue
        if custom_id in seen:
            fail("duplicate_custom_id", f"The custom_id '{custom_id[:64]}' of line {number} is used more than once.",
                 number, "custom_id")
            continue
        seen.add(custom_id)
        if item.get("method") != "POST":
            fail("invalid_method", f"Line {number}: method must be 'POST'.", number, "method")
        if item.get("url") != endpoint:
            fail("invalid_url", f"Line {number}: url must be the batch's endpoint '{endpoint}'.", number, "url")
        body = item.get("body")
        if not isinstance(body, dict):
            fail("missing_required_parameter", f"Line {number} has no request body.", number, "body")
            continue
        models.add(str(body.get("model")))
        lines.append(Line(number, custom_id, body))
    if len(models) > 1:
        fail("mismatched_model", "Every request of a batch must use the same model; this file uses "
             f"{', '.join(sorted(models))}.", None, "body.model")
    if not lines and not errors:
        fail("empty_file", "The input file has no requests.", None)
    if len(lines) > MAX_REQUESTS:
        fail("too_many_requests", f"A batch may hold at most {MAX_REQUESTS:,} requests; this file has "
             f"{len(lines):,}. Split it into several batches.", None)
    return lines, errors[:MAX_LISTED_ERRORS]


class BatchService:
    """Files and batches of one server, kept under `root`; batches run as tasks on the server's event loop."""

    def __init__(self, root: Path, answer: Answer, stopping: threading.Event) -> None:
        self.files_dir, self.batches_dir = root / "files", root / "batches"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.batches_dir.mkdir(parents=True, exist_ok=True)
        self.answer, self.stopping = answer, stopping
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._batches: dict[str, dict[str, Any]] = {}
        for path in sorted(self.batches_dir.glob("batch_*.json")):
            try:
                batch = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                continue  # written half by a crash: the batch is lost, as a provider's would be after an outage
            self._batches[batch["id"]] = batch

    # -- files ------------------------------------------------------------------------------
    def add_file(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        """Store a file and return its File object."""
        file_id = _new_id("file-")
        (self.files_dir / f"{file_id}.jsonl").write_bytes(data)
        meta = {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                "filename": filename, "purpose": purpose, "status": "processed", "expires_at": None,
                "status_details": None}
        _write_json(self.files_dir / f"{file_id}.json", meta)
        return meta

    def upload(self, parts: dict[str, Upload]) -> dict[str, Any]:
        """POST /v1/files: check the form fields and store the file."""
        purpose = parts["purpose"].data.decode("utf-8", "replace").strip() if "purpose" in parts else ""
        if not purpose:
            raise OpenAIError(400, "Missing required parameter: 'purpose'.", param="purpose",
                              code="missing_required_parameter")
        if purpose not in FILE_PURPOSES:
            raise OpenAIError(400, f"The built-in server stores files for the Batch API only: purpose must be "
                              f"'batch', not '{purpose[:40]}'.", param="purpose", code="invalid_value")
        upload = parts.get("file")
        if upload is None:
            raise OpenAIError(400, "Missing required parameter: 'file'.", param="file",
                              code="missing_required_parameter")
        if len(upload.data) > MAX_FILE_BYTES:
            raise OpenAIError(400, f"A batch input file may be at most {MAX_FILE_BYTES // 2**20} MB; this one is "
                              f"{len(upload.data) / 2**20:.0f} MB. Split the requests into several batches.",
                              param="file", code="file_too_large")
        return self.add_file(upload.data, upload.filename or "upload.jsonl", purpose)

    def file(self, file_id: str) -> dict[str, Any]:
        """The File object of `file_id`."""
        path = self.files_dir / f"{file_id}.json"
        if not file_id.startswith("file-") or "/" in file_id or not path.is_file():
            raise not_found("File object", file_id)
        return json.loads(path.read_text(encoding="utf-8"))

    def file_content(self, file_id: str) -> bytes:
        """The bytes of file `file_id`."""
        self.file(file_id)
        return (self.files_dir / f"{file_id}.jsonl").read_bytes()

    # -- batches ----------------------------------------------------------------------------
    def _save(self, batch: dict[str, Any]) -> None:
        _write_json(self.batches_dir / f"{batch['id']}.json", batch)

    def batch(self, batch_id: str) -> dict[str, Any]:
        """The Batch object of `batch_id`."""
        if batch_id not in self._batches:
            raise not_found("batch", batch_id, "batch_id")
        return self._batches[batch_id]

    def list_batches(self, limit: int = 20, after: str | None = None) -> dict[str, Any]:
        """GET /v1/batches: newest first, `limit` at a time, after the batch id `after`."""
        ordered = sorted(self._batches.values(), key=lambda b: (b["created_at"], b["id"]), reverse=True)
        if after is not None:
            ids = [b["id"] for b in ordered]
            ordered = ordered[ids.index(after) + 1:] if after in ids else []
        page = ordered[:limit]
        return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None, "has_more": len(ordered) > limit}

    def create_batch(self, body: Any) -> dict[str, Any]:
        """POST /v1/batches: check the request, record the batch and start answering it."""
        if not isinstance(body, dict):
            raise OpenAIError(400, "The request body must be a JSON object.")
        for name in ("input_file_id", "endpoint", "completion_window"):
            if not isinstance(body.get(name), str) or not body[name]:
                raise OpenAIError(400, f"Missing required parameter: '{name}'.", param=name,
                                  code="missing_required_parameter")
        if body["endpoint"] not in ENDPOINTS:
            raise OpenAIError(400, f"The built-in server runs batches for {', '.join(ENDPOINTS)} only, not "
                              f"'{body['endpoint'][:60]}'.", param="endpoint", code="invalid_value")
        if body["completion_window"] != "24h":
            raise OpenAIError(400, "completion_window must be '24h'.", param="completion_window", code="invalid_value")
        source = self.file(body["input_file_id"])
        if source["purpose"] != "batch":
            raise OpenAIError(400, f"File {source['id']} was not uploaded with purpose 'batch'.",
                              param="input_file_id", code="invalid_value")
        metadata = body.get("metadata")
        if metadata is not None and not (isinstance(metadata, dict) and len(metadata) <= 16
                                         and all(isinstance(v, str) for v in metadata.values())):
            raise OpenAIError(400, "metadata must be at most 16 text values.", param="metadata", code="invalid_value")
        now = int(time.time())
        batch = {"id": _new_id("batch_"), "object": "batch", "endpoint": body["endpoint"], "errors": None,
                 "input_file_id": source["id"], "completion_window": "24h", "status": "validating",
                 "output_file_id": None, "error_file_id": None, "created_at": now, "in_progress_at": None,
                 "expires_at": now + COMPLETION_WINDOW_S, "finalizing_at": None, "completed_at": None,
                 "failed_at": None, "expired_at": None, "cancelling_at": None, "cancelled_at": None,
                 "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": metadata, "model": None,
                 "usage": _usage(0, 0)}
        self._batches[batch["id"]] = batch
        self._save(batch)
        self._start(batch["id"])
        return batch

    def cancel(self, batch_id: str) -> dict[str, Any]:
        """POST /v1/batches/{id}/cancel: stop after the request being answered; finished answers are kept."""
        batch = self.batch(batch_id)
        if batch["status"] in TERMINAL:
            raise OpenAIError(409, f"Cannot cancel a batch with status '{batch['status']}'.",
                              code="batch_not_cancellable")
        if batch["status"] != "cancelling":
            batch["status"], batch["cancelling_at"] = "cancelling", int(time.time())
            self._save(batch)
        if batch_id not in self._tasks:  # nothing running it (a stopped server): finish the cancel now
            self._start(batch_id)
        return batch

    def resume(self) -> None:
        """At start-up: carry on with every batch that was not finished when the server last stopped."""
        for batch_id, batch in self._batches.items():
            if batch["status"] not in TERMINAL:
                self._start(batch_id)

    async def close(self) -> None:
        """Stop the tasks (a batch in progress carries on at the next start)."""
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def _start(self, batch_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._run(batch_id))
        self._tasks[batch_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(batch_id, None))

    # -- answering a batch (a task on the event loop) -----------------------------------------
    def _work_file(self, batch_id: str, kind: str) -> Path:
        return self.batches_dir / f"{batch_id}.{kind}.jsonl"

    async def _run(self, batch_id: str) -> None:
        batch = self._batches[batch_id]
        data = await asyncio.to_thread(self.file_content, batch["input_file_id"])
        lines, errors = read_lines(data, batch["endpoint"])
        if errors:
            now = int(time.time())
            batch.update(status="failed", failed_at=now, errors={"object": "list", "data": errors})
            self._save(batch)
            return
        if batch["status"] == "validating":
            batch.update(status="in_progress", in_progress_at=int(time.time()), model=lines[0].body.get("model"))
            batch["request_counts"]["total"] = len(lines)
            self._save(batch)
        answered = self._answered(batch_id)  # after a restart: what was answered before it
        outputs = {kind: self._work_file(batch_id, kind).open("a", encoding="utf-8") for kind in ("output", "error")}
        saved_at = time.monotonic()
        try:
            for line in lines:
                if line.custom_id in answered:
                    continue
                if batch["status"] == "cancelling":
                    break
                if time.time() > batch["expires_at"]:
                    batch["status"] = "expired"
                    break
                status, body = await self.answer(line.body)
                if self.stopping.is_set():
                    return  # the server is stopping: this request is answered again at the next start
                self._record(batch, outputs, line, status, body)
                if time.monotonic() - saved_at > SAVE_EVERY_S:
                    self._save(batch)
                    saved_at = time.monotonic()
        finally:
            for handle in outputs.values():
                handle.close()
            self._save(batch)
        self._finish(batch, lines)

    def _answered(self, batch_id: str) -> set[str]:
        done: set[str] = set()
        for kind in ("output", "error"):
            path = self._work_file(batch_id, kind)
            if path.exists():
                for raw in path.read_text(encoding="utf-8").splitlines():
                    try:
                        done.add(json.loads(raw)["custom_id"])
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut short by a crash: that request is answered again
        return done

    def _record(self, batch: dict[str, Any], outputs: dict[str, Any], line: Line, status: int,
                body: dict[str, Any]) -> None:
        result = {"id": _new_id("batch_req_"), "custom_id": line.custom_id,
                  "response": {"status_code": status, "request_id": _new_id("req_"), "body": body}, "error": None}
        ok = 200 <= status < 300
        outputs["output" if ok else "error"].write(json.dumps(result) + "\n")
        outputs["output" if ok else "error"].flush()
        batch["request_counts"]["completed" if ok else "failed"] += 1
        usage = body.get("usage") if ok else None
        if isinstance(usage, dict):
            spent = batch["usage"]
            batch["usage"] = _usage(spent["input_tokens"] + int(usage.get("prompt_tokens") or 0),
                                    spent["output_tokens"] + int(usage.get("completion_tokens") or 0))

    def _finish(self, batch: dict[str, Any], lines: list[Line]) -> None:
        """Turn the answers into the batch's output and error files and close the batch."""
        now = int(time.time())
        ending = {"cancelling": "cancelled", "expired": "expired"}.get(batch["status"], "completed")
        if ending != "completed":  # requests never answered are listed in the error file, as OpenAI does
            answered = self._answered(batch["id"])
            code, message = (("batch_expired", "This request could not be executed before the completion window "
                              "expired.") if ending == "expired" else
                             ("batch_cancelled", "This request was not executed because the batch was cancelled."))
            with self._work_file(batch["id"], "error").open("a", encoding="utf-8") as handle:
                for line in lines:
                    if line.custom_id not in answered:
                        handle.write(json.dumps({"id": _new_id("batch_req_"), "custom_id": line.custom_id,
                                                 "response": None, "error": {"code": code, "message": message}}) + "\n")
                        batch["request_counts"]["failed"] += 1
        batch.update(status="finalizing", finalizing_at=now)
        for kind, field in (("output", "output_file_id"), ("error", "error_file_id")):
            path = self._work_file(batch["id"], kind)
            if path.exists() and path.stat().st_size:
                batch[field] = self.add_file(path.read_bytes(), f"{batch['id']}_{kind}.jsonl", "batch_output")["id"]
            path.unlink(missing_ok=True)
        batch["status"] = ending
        batch[f"{ending}_at"] = now
        self._save(batch)


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": prompt + completion}


def default_root() -> Path:
    """Where the server keeps batch files: $MARKETLAB_HOME/batch-api/."""
    from .config import home

    return home() / "batch-api"


__all__ = ["Answer", "BatchService", "Line", "Upload", "default_root", "not_found", "parse_multipart", "read_lines"]
