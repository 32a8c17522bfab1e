"""Tokens per second of the built-in model in-process, beside the same generation over HTTP + SDK.

Target: the HTTP path costs no more than 10% (ratio HTTP / in-process at least 0.9).
Rounds alternate between the two paths so that both see the same machine load.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

PROMPT = "Write a detailed product description for a lightweight two-person hiking tent."
MAX_TOKENS = 200
ROUNDS = 5


def main() -> None:
    """Measure and print both rates and their ratio."""
    os.environ["MARKETLAB_HOME"] = tempfile.mkdtemp(prefix="marketlab-bench-")
    os.environ.pop("MARKETLAB_PORT", None)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "MARKETLAB_BACKEND"):
        os.environ.pop(name, None)

    from marketlab import llm
    from marketlab.llm import local
    from marketlab.llm.engine import LocalEngine
    from marketlab.llm.protocol import parse_chat_request

    body = {"model": llm.model_name(), "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": MAX_TOKENS, "temperature": 0}
    engine = LocalEngine()
    api = llm.client()
    try:
        in_process, over_http = [], []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            tokens = engine.complete(parse_chat_request(body))["usage"]["completion_tokens"]
            in_process.append(tokens / (time.perf_counter() - started))

            started = time.perf_counter()
            reply = api.chat.completions.create(**body)
            over_http.append(reply.usage.completion_tokens / (time.perf_counter() - started))
        a, b = statistics.median(in_process), statistics.median(over_http)
        print(f"completion tokens per request : {tokens} (same request both ways, temperature 0)")
        print(f"in-process (LocalEngine)      : {a:7.1f} tokens/s (median of {ROUNDS})")
        print(f"HTTP server + openai SDK      : {b:7.1f} tokens/s (median of {ROUNDS})")
        print(f"ratio HTTP / in-process       : {b / a:7.3f}  (target >= 0.9)")
    finally:
        # Only the server this bench's own home started is stopped (see marketlab.llm.local).
        print(f"clean-up                      : {local.stop_server().message}")
