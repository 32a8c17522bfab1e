"""The embedded model server under a class of learners: prompt reuse off against on, in one run.

Both servers are the real `python -m marketlab.llm.server --parallel N` (default 32, the slots a
class's gateway should use), started one at a time and afresh for each load (never two at once: the
machine's cores are the resource measured; afresh, so no load finds what an earlier one stored):
- reuse off: `--prefix-cache-mb 0`, every prompt read from its first token;
- reuse on: the default store, where the brief every learner shares is read about twice per class.
Every request goes through the real openai SDK over HTTP. The loads:
1. Throughput: one client sending R requests in turn, then 8 clients sending R each at once; the
   figure is generated (completion) tokens per second over the wall time. Short product prompts,
   not streamed. Beside it, the ceiling: the same 8 clients' requests on the engine in a process of
   its own, without HTTP (target: the server reaches at least 0.9 of it).
2. A class: L simulated learners (default 30), each sending one lab-sized request, streamed: Lab 2's
   product-copy prompt (the reference brief compiled with one product, about 460-530 tokens, of which
   the first 296 are the same for everyone; each learner a different product), max_tokens 120. The
   figure is time to first token (first content chunk). Two arrival models: all at once (everyone runs
   the cell on the instructor's word; target p90 < 20 s) and spread (arrivals uniform at random over a
   window, default 60 s, fixed seed, as learners reach the cell at their pace; target p90 < 2 s).
   The server's own counters give the prompt cache's hit rate for each load.
`python -m bench serving --quick` for a shorter run; `--baseline` adds a server that answers one request
at a time (`--parallel 1`); `--url URL` measures another OpenAI-compatible server with the same loads.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
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


def _start(parallel: int, home: Path, threads: int | None = None,
           extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
    """Start `python -m marketlab.llm.server --parallel N [extra]` and wait until it answers."""
    def command(port: int) -> list[str]:
        argv = [sys.executable, "-m", "marketlab.llm.server", "--port", str(port), "--parallel", str(parallel)]
        return argv + (["--threads", str(threads)] if threads else []) + list(extra)

    return start_server(command, seconds=300, what="the model server", env={**os.environ, "MARKETLAB_HOME": str(home)})


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


def _cache(base_url: str) -> dict[str, Any]:
    import httpx2

    return httpx2.get(base_url.removesuffix("/v1") + "/health", timeout=30).json().get("prefix_cache", {})


def measure_throughput(base_url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Tokens per second of one client, then of 8 clients at once."""
    _ask(base_url, _model(base_url), [{"role": "user", "content": "Hi"}], "warm-up", 5)
    figures: dict[str, Any] = {}
    for clients in (1, 8):
        key = "one client tok/s" if clients == 1 else "8 clients tok/s"
        figures[key] = throughput(base_url, clients, args.requests, args.max_tokens_short)
        print(f"  {key}: {figures[key]:.1f}", flush=True)
    return figures


def measure_class(base_url: str, args: argparse.Namespace, spread: float) -> dict[str, float]:
    """Time to first token of a class of learners, and the share of their prompts that reused a stored start."""
    _ask(base_url, _model(base_url), [{"role": "user", "content": "Hi"}], "warm-up", 5)
    before = _cache(base_url)
    timings, wall = a_class(base_url, args.learners, spread, args.max_tokens_lab)
    after = _cache(base_url)
    ttft = [t.ttft_s for t in timings]
    lookups = after.get("hits", 0) + after.get("misses", 0) - before.get("hits", 0) - before.get("misses", 0)
    return {"p50 ttft": statistics.median(ttft), "p90 ttft": _p(ttft, 0.9), "max ttft": max(ttft),
            "p90 total": _p([t.total_s for t in timings], 0.9), "wall": wall,
            "tok/s": sum(t.tokens for t in timings) / wall,
            "cache hit rate": (after.get("hits", 0) - before.get("hits", 0)) / lookups if lookups else 0.0,
            "prompt tokens reused": after.get("tokens_reused", 0) - before.get("tokens_reused", 0),
            "prompt tokens read": after.get("tokens_read", 0) - before.get("tokens_read", 0)}


def ceiling(args: argparse.Namespace) -> float:
    """The 8-client load on the engine itself, in a process of its own: tokens per second without HTTP."""
    done = subprocess.run([sys.executable, "-m", "bench.serving", "--ceiling-child", "--parallel", str(args.parallel),
                           "--requests", str(args.requests), "--max-tokens-short", str(args.max_tokens_short)]
                          + (["--threads", str(args.threads)] if args.threads else []),
                          capture_output=True, text=True, env={**os.environ, "MARKETLAB_HOME": tempfile.mkdtemp()})
    if done.returncode != 0:
        raise SystemExit(f"the in-process measurement failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def _ceiling_child(args: argparse.Namespace) -> None:
    from marketlab.llm.config import LOCAL_MODEL
    from marketlab.llm.engine import LocalEngine
    from marketlab.llm.protocol import parse_chat_request

    engine = LocalEngine(slots=args.parallel, n_threads=args.threads)
    try:
        def client(c: int) -> Any:
            def job() -> Timing:
                tokens = 0
                for k in range(args.requests):
                    request = parse_chat_request({
                        "model": LOCAL_MODEL, "max_tokens": args.max_tokens_short, "temperature": 0,
                        "user": f"client-{c}",
                        "messages": [{"role": "user", "content": SHORT_PROMPTS[(c + k) % len(SHORT_PROMPTS)]}]})
                    tokens += engine.complete(request)["usage"]["completion_tokens"]
                return Timing(0.0, 0.0, tokens)
            return job

        engine.complete(parse_chat_request({"model": LOCAL_MODEL, "max_tokens": 5, "temperature": 0,
                                            "messages": [{"role": "user", "content": "Hi"}]}))
        timings, wall = _together([(0.0, client(c)) for c in range(8)])
        print(sum(t.tokens for t in timings) / wall)
    finally:
        engine.close()


TARGETS = {"all at once": 20.0, "spread": 2.0}


def _report(results: dict[str, dict[str, Any]], args: argparse.Namespace, inproc: float | None) -> None:
    names = list(results)
    print(f"\n{'':34}" + "".join(f"{n:>22}" for n in names))
    keys = list(dict.fromkeys(key for n in names for key in results[n]))
    for key in keys:
        value = next(results[n][key] for n in names if key in results[n])
        if isinstance(value, dict):
            print(f"{key} ({args.learners} learners, Lab 2's prompt, max_tokens {args.max_tokens_lab}, streamed):")
            for sub in value:
                unit = "" if sub in ("tok/s", "cache hit rate", "prompt tokens reused", "prompt tokens read") else " s"
                print(f"  {sub:32}" + "".join(f"{results[n][key][sub]:>20.2f}{unit:2}" if key in results[n]
                                              else f"{'not run':>22}" for n in names))
        else:
            print(f"{key:34}" + "".join(f"{results[n][key]:>20.1f}  " if key in results[n] else f"{'not run':>22}"
                                        for n in names))
    if inproc is not None:
        print(f"{'in-process ceiling, 8 clients':34}{inproc:>20.1f}  tok/s (the engine without HTTP, "
              f"{args.parallel} slots)")
    print()
    for name in names:
        r = results[name]
        if inproc and "8 clients tok/s" in r:
            ratio = r["8 clients tok/s"] / inproc
            print(f"{name}: 8 clients / in-process ceiling = {ratio:.2f} (target >= 0.9: "
                  f"{'met' if ratio >= 0.9 else 'MISSED'})")
        for key, value in r.items():
            if isinstance(value, dict):
                target = TARGETS["all at once" if "all at once" in key else "spread"]
                verdict = "met" if value["p90 ttft"] < target else "MISSED"
                print(f"{name}: {key}: p90 time to first token {value['p90 ttft']:.2f} s (target < {target:g} s: "
                      f"{verdict}); cache hit rate {value['cache hit rate']:.0%}")


def main(argv: list[str] | None = None) -> None:
    """Measure the server with prompt reuse off and on, on the same loads, and print them side by side."""
    parser = argparse.ArgumentParser(prog="python -m bench serving")
    parser.add_argument("--parallel", type=int, default=32, help="slots of the servers")
    parser.add_argument("--learners", type=int, default=30)
    parser.add_argument("--spread", type=float, default=60.0, help="seconds over which the spread arrivals come")
    parser.add_argument("--requests", type=int, default=5, help="requests per client in the throughput load")
    parser.add_argument("--max-tokens-short", type=int, default=100)
    parser.add_argument("--max-tokens-lab", type=int, default=120)
    parser.add_argument("--quick", action="store_true", help="10 learners, spread over 20 s, 3 requests per client")
    parser.add_argument("--baseline", action="store_true", help="also a server answering one request at a time")
    parser.add_argument("--threads", type=int, help="llama.cpp threads of the servers (default: one per core)")
    parser.add_argument("--throughput-only", action="store_true", help="skip the class loads")
    parser.add_argument("--classes-only", action="store_true", help="skip the throughput load and the ceiling")
    parser.add_argument("--url", help="measure this OpenAI-compatible base URL instead of starting servers")
    parser.add_argument("--ceiling-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv or [])
    if args.ceiling_child:
        _ceiling_child(args)
        return
    if args.quick:
        args.learners, args.spread, args.requests = 10, 20.0, 3
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "MARKETLAB_BACKEND", "MARKETLAB_MODEL",
                 "MARKETLAB_PREFIX_CACHE_MB", "MARKETLAB_SERVER_SLOTS"):
        os.environ.pop(name, None)
    loads: list[tuple[str, float | None]] = []
    if not args.throughput_only:
        loads += [("class, all at once", 0.0), (f"class, spread over {args.spread:.0f} s", args.spread)]
    if not args.classes_only:
        loads.append(("throughput", None))

    def run(url: str) -> dict[str, Any]:
        figures: dict[str, Any] = {}
        for load, spread in loads:
            if spread is None:
                figures.update(measure_throughput(url, args))
            else:
                figures[load] = measure_class(url, args, spread)
                print(f"  {load}: " + ", ".join(f"{k} {v:.2f}" for k, v in figures[load].items()), flush=True)
        return figures

    if args.url:
        _report({args.url.split("//")[-1][:20]: run(args.url)}, args, None)
        return
    work = Path(tempfile.mkdtemp(prefix="marketlab-bench-serving-"))
    plans = [("reuse on", args.parallel, ()), ("reuse off", args.parallel, ("--prefix-cache-mb", "0"))]
    if args.baseline:
        plans.insert(0, ("one at a time", 1, ("--prefix-cache-mb", "0")))
    results: dict[str, dict[str, Any]] = {}
    for label, parallel, extra in plans:
        print(f"{label} ({parallel} slots):", flush=True)
        results[label] = {}
        for n, (load, spread) in enumerate(loads):  # a fresh server for each load: nothing stored carries over
            process, base_url = _start(parallel, work / f"{label.split()[-1]}-{n}", args.threads, extra)
            try:
                if spread is None:
                    results[label].update(measure_throughput(base_url, args))
                else:
                    results[label][load] = measure_class(base_url, args, spread)
                    print(f"  {load}: " + ", ".join(f"{k} {v:.2f}" for k, v in results[label][load].items()),
                          flush=True)
            finally:
                process.terminate()
                process.wait(60)
    shutil.rmtree(work, ignore_errors=True)  # the servers' homes: logs and ledgers of a measurement
    inproc = None
    if not args.classes_only:
        print("in-process ceiling (8 clients, no HTTP):", flush=True)
        inproc = ceiling(args)
        print(f"  {inproc:.1f} tok/s", flush=True)
    _report(results, args, inproc)


if __name__ == "__main__":
    main(sys.argv[1:])
