"""The batch runner against an OpenAI-compatible HTTP endpoint that answers after 200 ms.

Figures, measured in one run on 1,000 catalogue rows:
- the runner with 8 workers beside a naive sequential loop (target: at least 6x faster); the naive
  loop is timed on a 100-row sample and extrapolated to 1,000 rows, as printed;
- the runner's efficiency against the ideal time, rows x endpoint latency / workers (target: at
  least 0.9), and its own overhead per row in milliseconds (time a worker spends per row beyond
  the endpoint's latency);
- an unchanged re-run served from the response cache (target: zero model calls, under 2 s);
- a run where 30% of requests fail (429, 500, timeout, malformed or truncated JSON) (target: no row lost).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ROWS = 1000
NAIVE_SAMPLE = 100
WORKERS = 8
LATENCY_S = 0.2
FAULT_RATE = 0.3


class _Endpoint:
    """Shared state of the bench server: how many chat requests arrived, and the fault dice."""

    def __init__(self) -> None:
        self.calls = 0
        self.fault_rate = 0.0
        self.lock = threading.Lock()
        self.dice = random.Random(7)

    def next(self) -> str | None:
        with self.lock:
            self.calls += 1
            if self.dice.random() >= self.fault_rate:
                return None
            return self.dice.choice(["rate_limit", "server_error", "timeout", "malformed", "truncated"])


def _handler(state: _Endpoint) -> type[BaseHTTPRequestHandler]:
    from marketlab.llm.testing import MALFORMED_CONTENT, TRUNCATED_CONTENT, example_for_schema

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as two writes; without TCP_NODELAY, Nagle plus delayed ACKs hold the
        # body back about 40 ms, and the endpoint answers after 240 ms instead of the 200 ms measured against.
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
            fault = state.next()
            time.sleep(LATENCY_S if fault != "timeout" else 2.0)
            if fault == "timeout":
                return  # the client gave up already
            if fault == "rate_limit":
                return self._send(429, {"error": {"message": "slow down", "type": "requests", "code": "rate_limit"}},
                                  {"retry-after": "0.05"})
            if fault == "server_error":
                return self._send(500, {"error": {"message": "oops", "type": "server_error", "code": None}})
            schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema", {})
            content, finish = json.dumps(example_for_schema(schema)), "stop"
            if fault == "malformed":
                content = MALFORMED_CONTENT
            elif fault == "truncated":
                content, finish = TRUNCATED_CONTENT, "length"
            prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
            self._send(200, {"id": "bench", "object": "chat.completion", "created": 0, "model": body.get("model"),
                             "choices": [{"index": 0, "finish_reason": finish,
                                          "message": {"role": "assistant", "content": content, "refusal": None}}],
                             "usage": {"prompt_tokens": prompt, "completion_tokens": len(content.split()),
                                       "total_tokens": prompt + len(content.split())}})

    return Handler


def main() -> None:
    """Start the 200 ms endpoint, run the three measurements and print the figures and ratios."""
    os.environ["MARKETLAB_HOME"] = tempfile.mkdtemp(prefix="marketlab-bench-")
    import openai
    import pandas as pd
    from pydantic import BaseModel, Field

    from marketlab import data, reference
    from marketlab.workflow import RetryPolicy, run_batch, summarize

    class ProductCopy(BaseModel):
        headline: str = Field(description="a headline naming the product", max_length=60)
        description: str = Field(description="the product description")

    state = _Endpoint()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    client = openai.OpenAI(base_url=base_url, api_key="bench-no-key", max_retries=2, timeout=1.0)

    catalogue = data.load("products")
    df = pd.concat([catalogue] * (ROWS // len(catalogue) + 1), ignore_index=True).head(ROWS)
    df["batch_row"] = range(1, ROWS + 1)  # every row's request differs, as real rows do
    brief = reference.load_brief()
    options = dict(brief=brief, workers=WORKERS, max_tokens=200, progress=False, show_summary=False,
                   request_timeout=1.0, retry=RetryPolicy(base_delay=0.05, max_delay=0.5))
    try:
        # 1. naive sequential loop on a sample
        sample = df.head(NAIVE_SAMPLE)
        started = time.perf_counter()
        for record in sample.to_dict("records"):
            client.chat.completions.parse(model="bench", messages=reference.build_messages(brief, record),
                                          response_format=ProductCopy, max_tokens=200)
        naive_sample_s = time.perf_counter() - started
        naive_s = naive_sample_s * ROWS / NAIVE_SAMPLE

        # 2. the runner, then the same run again from the cache
        cache = os.path.join(os.environ["MARKETLAB_HOME"], "bench-cache")
        started = time.perf_counter()
        out = run_batch(df, reference.build_messages, ProductCopy, client, "bench", cache=cache, **options)
        runner_s = time.perf_counter() - started
        calls_before = state.calls
        started = time.perf_counter()
        again = run_batch(df, reference.build_messages, ProductCopy, client, "bench", cache=cache, **options)
        cached_s = time.perf_counter() - started
        cached_calls = state.calls - calls_before

        # 3. 30% of requests fail
        state.fault_rate = FAULT_RATE
        calls_before = state.calls
        started = time.perf_counter()
        faulty = run_batch(df, reference.build_messages, ProductCopy, client, "bench", cache=False, **options)
        faulty_s = time.perf_counter() - started
        faulty_calls = state.calls - calls_before
    finally:
        server.shutdown()

    summary = summarize(faulty)
    lost = ROWS - len(faulty) + summary.lost
    usable = summary.statuses["ok"] + summary.statuses["repaired"]
    print(f"endpoint: OpenAI-compatible HTTP on 127.0.0.1, answers after {LATENCY_S * 1000:.0f} ms; {ROWS} rows")
    print(f"naive sequential loop        : {naive_sample_s:6.2f} s for {NAIVE_SAMPLE} rows, "
          f"extrapolated to {naive_s:6.1f} s for {ROWS} rows")
    print(f"runner, {WORKERS} workers           : {runner_s:6.2f} s for {ROWS} rows "
          f"({(out['status'] == 'ok').sum()} ok)")
    print(f"speed-up runner / naive      : {naive_s / runner_s:6.2f}x  (target >= 6x)")
    ideal_s = ROWS * LATENCY_S / WORKERS
    overhead_ms = (runner_s * WORKERS / ROWS - LATENCY_S) * 1000
    print(f"efficiency ideal / runner    : {ideal_s / runner_s:6.2f}   (ideal {ideal_s:.1f} s = {ROWS} rows x "
          f"{LATENCY_S * 1000:.0f} ms / {WORKERS} workers; target >= 0.9)")
    print(f"runner overhead per row      : {overhead_ms:6.1f} ms per row per worker, beyond the endpoint's "
          f"{LATENCY_S * 1000:.0f} ms")
    print(f"cached re-run                : {cached_s:6.2f} s, {cached_calls} model calls, "
          f"{(again['source'] == 'cache').sum()} rows from the cache  (target: 0 calls, < 2 s)")
    print(f"30% of requests failing      : {faulty_s:6.2f} s, {faulty_calls} requests for {ROWS} rows; "
          f"{len(faulty)} rows back, {lost} lost  (target: 0 lost)")
    print(f"  statuses: {summary.statuses}; failures by kind: {summary.failures}; "
          f"usable rate {usable / ROWS:.1%}")


if __name__ == "__main__":
    main()
