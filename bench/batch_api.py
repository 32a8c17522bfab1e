"""`marketlab run` on 10,000 rows: run_batch beside the Batch API (--batch-api), side by side in one run.

Both paths run the same packaged workflow folder through marketlab.run against the same server:
marketlab's embedded OpenAI-compatible server (marketlab.llm.server's app, in its own process, with
its files and batches endpoints) whose model is replaced by a stand-in that answers at once with a
schema-valid reply and a token count of one per four characters. So the figures are marketlab's
own cost of each path, with a model that takes no time:
- run_batch, 8 workers, over HTTP: rows per second and wall time;
- the Batch API: rows per second and wall time, split into the workflow's passes against the
  answers (run_batch validating, in this process) and everything else (upload, the server
  answering the batch, polling, download);
- the cost of the 10,000 rows at gpt-4o-mini's list price, and at the batch price.

How the figures scale: with a real provider, run_batch takes about rows x latency / workers (2 s
per reply and 8 workers: 10,000 rows in 42 minutes), and rate limits cap it further; the Batch API's
client-side work stays about what is measured here per 10,000 rows (it grows linearly with rows),
while the provider's turnaround (minutes to hours, at most the 24 h window) replaces the waiting,
for half the price. `python -m bench batch_api --rows 2000` for a quicker run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ._server import start_server

ROWS = 10_000
WORKERS = 8
LIST_PRICES = (0.15, 0.60)  # gpt-4o-mini, USD per million tokens (marketlab.llm.prices)


class StandInEngine:
    """The embedded server's engine, answering at once: a reply that fits the schema, realistic token counts."""

    def complete(self, request: Any, cancel: Any = None) -> dict[str, Any]:
        from marketlab.llm.testing import example_for_schema

        fmt = request.response_format
        schema = fmt.json_schema.schema_ if fmt is not None and fmt.json_schema is not None else {}
        content = json.dumps({**example_for_schema(schema), "headline": "Ready for the trail"})
        prompt = sum(len(m.text()) for m in request.messages) // 4
        return {"id": "chatcmpl-stand-in", "object": "chat.completion", "created": 0, "model": request.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                             "logprobs": None, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": len(content) // 4,
                          "total_tokens": prompt + len(content) // 4}}


def serve(port: int, root: str) -> None:
    """Run the embedded server's app with the stand-in engine (the bench starts this in its own process)."""
    import uvicorn

    from marketlab.llm.server import build_app

    uvicorn.run(build_app(StandInEngine(), Path(root)), host="127.0.0.1", port=port, log_level="warning")


def _start_server(root: Path) -> tuple[subprocess.Popen, str]:
    return start_server(lambda port: [sys.executable, "-m", "bench.batch_api", "--serve", str(port), str(root)],
                        seconds=60, what="the stand-in server", need_ok=False)


def _folder(root: Path) -> Path:
    from pydantic import BaseModel, Field

    from marketlab import reference
    from marketlab.workflow import RunSettings, save_workflow

    class ProductCopy(BaseModel):
        headline: str = Field(description="a headline naming the product", max_length=60)
        description: str = Field(description="the product description")

    folder = root / "workflow"
    folder.mkdir()
    save_workflow(reference.load_brief(), reference.build_messages, ProductCopy, None, RunSettings(max_tokens=200),
                  here=folder)
    return folder


def main(argv: list[str] | None = None) -> None:
    """Measure both paths on the same rows and print the figures side by side."""
    parser = argparse.ArgumentParser(prog="python -m bench batch_api")
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv or [])
    if args.serve:
        return serve(int(args.serve[0]), args.serve[1])
    work = Path(tempfile.mkdtemp(prefix="marketlab-bench-batch-"))
    os.environ["MARKETLAB_HOME"] = str(work / "home")
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "MARKETLAB_BACKEND", "MARKETLAB_MODEL"):
        os.environ.pop(name, None)
    import openai
    import pandas as pd

    from marketlab import data
    from marketlab.run import BatchOptions, RunRequest, run

    catalogue = data.load("products")
    rows = pd.concat([catalogue] * (args.rows // len(catalogue) + 1), ignore_index=True).head(args.rows)
    rows["sku"] = [f"{sku}-{i}" for i, sku in enumerate(rows["sku"])]
    rows["batch_row"] = range(1, args.rows + 1)  # every row's request differs, as real rows do
    source = work / "products.csv"
    rows.to_csv(source, index=False)
    folder = _folder(work)
    server, base_url = _start_server(work / "server")
    client = openai.OpenAI(base_url=base_url, api_key="bench-no-key", max_retries=2, timeout=60)
    params = {"workers": WORKERS, "cache": False, "checkpoint": False, "prices": list(LIST_PRICES)}
    try:
        started = time.perf_counter()
        direct = run(RunRequest(folder, source, work / "direct.csv", params, echo=False), client)
        direct_s = time.perf_counter() - started
        started = time.perf_counter()
        batched = run(RunRequest(folder, source, work / "batched.csv", params, BatchOptions(poll_max_s=1.0),
                                 echo=False), client)
        batched_s = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    n = args.rows
    for name, result in (("run_batch", direct), ("Batch API", batched)):
        ok = result.summary.statuses["ok"] if result.summary else 0
        if result.rows_out != n or ok != n:
            print(f"warning: {name} gave {result.rows_out} rows, {ok} ok (exit {int(result.exit_code)}: "
                  f"{result.problems})")
    direct_cost, batched_cost = direct.summary.cost_usd or 0.0, batched.summary.cost_usd or 0.0
    per_10k = 10_000 / n
    batch = batched.batch
    print(f"server: marketlab's embedded server (own process) with a stand-in model that answers at once; {n:,} rows")
    print(f"{'':28}{'run_batch, 8 workers':>24}{'Batch API':>16}")
    print(f"{'wall time (s)':28}{direct_s:>24.1f}{batched_s:>16.1f}")
    print(f"{'rows per second':28}{n / direct_s:>24.0f}{n / batched_s:>16.0f}")
    print(f"{'cost (USD, gpt-4o-mini)':28}{direct_cost:>24.4f}{batched_cost:>16.4f}   (list price vs batch price)")
    print(f"{'cost per 10,000 rows (USD)':28}{direct_cost * per_10k:>24.4f}{batched_cost * per_10k:>16.4f}")
    print(f"batch / run_batch cost       : {batched_cost / direct_cost if direct_cost else float('nan'):.2f}x"
          f"   (target 0.50x: the batch price)")
    print(f"Batch API time, split        : {batch.passes_s:.1f} s in the workflow's passes (run_batch validating "
          f"answers), {batched_s - batch.passes_s:.1f} s upload, serving, polling and download; "
          f"{batch.requests:,} requests in {batch.rounds} round(s), batches {', '.join(batch.batch_ids)}")
    print(f"client work per 10,000 rows  : {batch.passes_s * per_10k:.1f} s of passes; with a real provider add its "
          "turnaround (minutes to 24 h) and drop the serving time measured here")
    print(f"run_batch at a real latency  : about rows x latency / workers, e.g. {n:,} x 2 s / {WORKERS} = "
          f"{n * 2 / WORKERS / 60:.0f} min, before rate limits")


if __name__ == "__main__":
    main(sys.argv[1:])
