"""The embedded model server under concurrent learners: one at a time against batched decoding, in one run.

Both servers are the real `python -m marketlab.llm.server` (SmolLM2-135M through llama-cpp-python),
started one after the other (never both at once: the machine's cores are the resource measured):
- one at a time: `--parallel 1`, one request decoded at a time, in arrival order, as before;
- batched: `--parallel N` (default 32, a class's gateway setting), several sequences per llama_batch,
  admitted fairly per learner (`user`).
Every request goes through the real openai SDK over HTTP. Two loads:
1. Throughput: one client sending R requests in turn, then 8 clients sending R each at once; the
   figure is generated (completion) tokens per second over the wall time. Short product prompts,
   not streamed (a streamed token costs the server and the client Python work per chunk).
2. A class: L simulated learners (default 30), each sending one lab-sized request, streamed: Lab 2's
   product-copy prompt (the reference brief compiled with one product, about 450 tokens; each learner
   a different product), max_tokens 120. The figure is time to first token (first content chunk).
   Two arrival models: all at once (everyone runs the cell on the instructor's word) and spread (arrivals
   uniform at random over a window, default 60 s, fixed seed, as learners reach the cell at their pace).
`python -m bench serving --quick` for a shorter run; `--url URL` measures another OpenAI-compatible
server (e.g. llama.cpp's llama-server) with the same loads instead.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._server import start_server

SHORT_PROMPTS = [
    "Write one sentence about a waterproof hiking jacket.",
    "Name three things to pack for a weekend camping trip.",
    "Describe a headlamp in one sentence.",
    "Give a short slogan for a trail running shoe.",
    "Write two sentences about a down sleeping bag.",
    "Describe a camping stove for a beginner.",
    "Write a product title for a 2-person tent.",
    "List three features of a good trekking pole.",
]


@dataclass
class Timing:
    """One request's figures."""

    ttft_s: float
    total_s: float
    tokens: int


def _start(parallel: int, home: Path, threads: int | None = None) -> tuple[subprocess.Popen, str]:
    """Start `python -m marketlab.llm.server --parallel N` and wait until it answers."""
    def command(port: int) -> list[str]:
        argv = [sys.executable, "-m", "marketlab.llm.server", "--port", str(port), "--parallel", str(parallel)]
        return argv + (["--threads", str(threads)] if threads else [])

    return start_server(command, seconds=180, what="the model server", env={**os.environ, "MARKETLAB_HOME": str(home)})


def _client(base_url: str) -> Any:
    import openai

    return openai.OpenAI(base_url=base_url, api_key="bench-no-key", max_retries=0, timeout=900)


def _model(base_url: str) -> str:
    return _client(base_url).models.list().data[0].id


def _ask(base_url: str, model: str, messages: list[dict[str, str]], user: str, max_tokens: int,
         stream: bool = True) -> Timing:
    """One request: time to the first content chunk (streamed) or to the reply, total time, completion tokens."""
    started = time.perf_counter()
    if not stream:
        reply = _client(base_url).chat.completions.create(model=model, messages=messages, max_tokens=max_tokens,
                                                          temperature=0, user=user)
        total = time.perf_counter() - started
        return Timing(total, total, reply.usage.completion_tokens)
    first = None
    tokens = 0
    stream = _client(base_url).chat.completions.create(
        model=model, messages=messages, max_tokens=max_tokens, temperature=0, stream=True, user=user,
        stream_options={"include_usage": True})
    for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    total = time.perf_counter() - started
    return Timing(first if first is not None else total, total, tokens)


def _together(jobs: list[tuple[float, Any]]) -> tuple[list[Timing], float]:
    """Run each job (start delay in seconds, callable) on its own thread; their timings and the wall time."""
    results: list[Timing | None] = [None] * len(jobs)
    errors: list[BaseException] = []
    started = time.perf_counter()

    def run(i: int, delay: float, job: Any) -> None:
        time.sleep(max(0.0, started + delay - time.perf_counter()))
        try:
            results[i] = job()
        except BaseException as exc:  # reported after the run
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, d, j)) for i, (d, j) in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return [r for r in results if r is not None], time.perf_counter() - started


def throughput(base_url: str, clients: int, each: int, max_tokens: int) -> float:
    """Generated tokens per second with `clients` clients each sending `each` requests in turn."""
    model = _model(base_url)

    def client(c: int) -> Any:
        def job() -> Timing:
            timings = [_ask(base_url, model, [{"role": "user", "content": SHORT_PROMPTS[(c + k) % len(SHORT_PROMPTS)]}],
                            f"client-{c}", max_tokens, stream=False) for k in range(each)]
            return Timing(0.0, sum(t.total_s for t in timings), sum(t.tokens for t in timings))
        return job

    timings, wall = _together([(0.0, client(c)) for c in range(clients)])
    return sum(t.tokens for t in timings) / wall


def lab_messages(learners: int) -> list[list[dict[str, str]]]:
    """Lab 2's product-copy request for each learner: the reference brief and one product each."""
    from marketlab import data, reference

    brief = reference.load_brief()
    products = data.load("products")
    return [brief.to_messages(products.iloc[i % len(products)].to_dict()) for i in range(learners)]


def a_class(base_url: str, learners: int, spread_s: float, max_tokens: int,
            seed: int = 15) -> tuple[list[Timing], float]:
    """Each learner sends one lab-sized streamed request, all at once (spread_s 0) or uniform over spread_s."""
    model = _model(base_url)
    rng = random.Random(seed)
    delays = [0.0] * learners if spread_s <= 0 else sorted(rng.uniform(0, spread_s) for _ in range(learners))
    jobs = [(delay, lambda m=m, i=i: _ask(base_url, model, m, f"learner-{i}", max_tokens))
            for i, (delay, m) in enumerate(zip(delays, lab_messages(learners)))]
    return _together(jobs)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure(base_url: str, args: argparse.Namespace, classes: bool = True) -> dict[str, Any]:
    """Every figure for one server (the class loads only when `classes`)."""
    _ask(base_url, _model(base_url), [{"role": "user", "content": "Hi"}], "warm-up", 5)
    figures: dict[str, Any] = {}
    for clients in (1, 8):
        key = "one client tok/s" if clients == 1 else "8 clients tok/s"
        figures[key] = throughput(base_url, clients, args.requests, args.max_tokens_short)
        print(f"  {key}: {figures[key]:.1f}", flush=True)
    for label, spread in (("all at once", 0.0), (f"spread over {args.spread:.0f} s", args.spread)) if classes else ():
        timings, wall = a_class(base_url, args.learners, spread, args.max_tokens_lab)
        ttft = [t.ttft_s for t in timings]
        figures[f"class, {label}"] = {"p50 ttft": statistics.median(ttft), "p90 ttft": _p(ttft, 0.9),
                                      "max ttft": max(ttft), "p90 total": _p([t.total_s for t in timings], 0.9),
                                      "wall": wall, "tok/s": sum(t.tokens for t in timings) / wall}
        print(f"  class, {label}: " + ", ".join(f"{k} {v:.2f}" for k, v in figures[f"class, {label}"].items()),
              flush=True)
    return figures


def _report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    names = list(results)
    print(f"\n{'':34}" + "".join(f"{n:>22}" for n in names))
    keys = list(dict.fromkeys(key for n in names for key in results[n]))
    for key in keys:
        value = next(results[n][key] for n in names if key in results[n])
        if isinstance(value, dict):
            print(f"{key} ({args.learners} learners, max_tokens {args.max_tokens_lab}, streamed):")
            for sub in value:
                unit = "" if sub == "tok/s" else " s"
                print(f"  {sub:32}" + "".join(f"{results[n][key][sub]:>20.2f}{unit:2}" if key in results[n]
                                              else f"{'not run':>22}" for n in names))
        else:
            print(f"{key:34}" + "".join(f"{results[n][key]:>20.1f}  " for n in names))
    for name in names:
        r = results[name]
        ratio = r["8 clients tok/s"] / r["one client tok/s"]
        print(f"{name}: 8 clients / one client = {ratio:.2f}x (target >= 2x: {'met' if ratio >= 2 else 'MISSED'})")
        for key, value in r.items():
            if isinstance(value, dict):
                verdict = "met" if value["p90 ttft"] < 2 else "MISSED"
                print(f"{name}: {key}: p90 time to first token {value['p90 ttft']:.2f} s (target < 2 s: {verdict})")
    if len(names) == 2:
        a, b = (results[n] for n in names)
        ratio = b["8 clients tok/s"] / a["8 clients tok/s"]
        print(f"batched / one at a time, 8 clients: {ratio:.2f}x tokens per second")


def main(argv: list[str] | None = None) -> None:
    """Measure the one-at-a-time and the batched server on the same loads and print them side by side."""
    parser = argparse.ArgumentParser(prog="python -m bench serving")
    parser.add_argument("--parallel", type=int, default=32, help="slots of the batched server")
    parser.add_argument("--learners", type=int, default=30)
    parser.add_argument("--spread", type=float, default=60.0, help="seconds over which the spread arrivals come")
    parser.add_argument("--requests", type=int, default=5, help="requests per client in the throughput load")
    parser.add_argument("--max-tokens-short", type=int, default=100)
    parser.add_argument("--max-tokens-lab", type=int, default=120)
    parser.add_argument("--quick", action="store_true", help="10 learners, spread over 20 s, 3 requests per client")
    parser.add_argument("--no-baseline", action="store_true", help="skip the one-at-a-time server")
    parser.add_argument("--baseline-throughput-only", action="store_true",
                        help="run only the throughput load on the one-at-a-time server (its class loads take minutes)")
    parser.add_argument("--threads", type=int, help="llama.cpp threads of both servers (default: one per core)")
    parser.add_argument("--throughput-only", action="store_true", help="skip the class loads")
    parser.add_argument("--url", help="measure this OpenAI-compatible base URL instead of starting servers")
    args = parser.parse_args(argv or [])
    if args.quick:
        args.learners, args.spread, args.requests = 10, 20.0, 3
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "MARKETLAB_BACKEND", "MARKETLAB_MODEL"):
        os.environ.pop(name, None)
    if args.url:
        _report({args.url.split("//")[-1][:20]: measure(args.url, args)}, args)
        return
    work = Path(tempfile.mkdtemp(prefix="marketlab-bench-serving-"))
    results: dict[str, dict[str, Any]] = {}
    plans = ([] if args.no_baseline else [("one at a time", 1)]) + [(f"batched ({args.parallel} slots)", args.parallel)]
    for label, parallel in plans:
        print(f"{label}:", flush=True)
        process, base_url = _start(parallel, work / label.split()[0], args.threads)
        try:
            classes = not args.throughput_only and (parallel > 1 or not args.baseline_throughput_only)
            results[label] = measure(base_url, args, classes=classes)
        finally:
            process.terminate()
            process.wait(60)
    _report(results, args)


if __name__ == "__main__":
    main(sys.argv[1:])
