"""One learner floods the built-in model, another runs a cell: how much slower is the other's first token?

The real `python -m marketlab.llm.server`, with the hub gateway's settings (`--parallel` = the
gateway's MODEL_SLOTS), every request through the real openai SDK with the learner's name in
`user`, as the gateway forwards it. Three loads, measured one after the other in one run:

1. alone: the other learner sends K short streamed requests, one after another;
2. flood through the gateway: meanwhile the flooder keeps as many lab-sized requests going as the
   gateway lets one learner have at once (`Allowance.in_flight`); the rest of a flood of hundreds
   waits in the gateway's per-learner queue and never reaches the model;
3. flood without that limit: the flooder keeps `--unlimited` requests going (what a server with no
   per-learner limit in front of it would see); the server's own per-learner admission still applies.

The figure is the other learner's time to first token (median and p90) under 2 and 3 over 1.
Target (issue 25): at most 2x through the gateway.

    python -m bench flood [--requests 8] [--unlimited 16]   (--unlimited 0: the gateway's case only)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from .serving import _ask, _model, _p, _start, lab_messages

VICTIM_PROMPT = [{"role": "user", "content": "Write a one-line tagline for a camping lantern."}]


def _victim(base_url: str, model: str, requests: int) -> list[float]:
    return [_ask(base_url, model, VICTIM_PROMPT, "learner-b", 24).ttft_s for _ in range(requests)]


def _flooded(base_url: str, model: str, requests: int, flooders: int) -> tuple[list[float], int]:
    """The victim's first-token times while `flooders` threads of learner A keep lab-sized requests going."""
    stop = threading.Event()
    sent = [0]
    messages = lab_messages(32)

    def flood(k: int) -> None:
        i = k
        while not stop.is_set():
            _ask(base_url, model, messages[i % len(messages)], "learner-a", 120)
            sent[0] += 1
            i += flooders

    threads = [threading.Thread(target=flood, args=(k,), daemon=True) for k in range(flooders)]
    for thread in threads:
        thread.start()
    time.sleep(3.0)  # the flood is under way (its prompts read, its replies decoding) before B asks
    try:
        return _victim(base_url, model, requests), sent[0]
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def main(argv: list[str] | None = None) -> None:
    from marketlab.hub.service import MODEL_SLOTS
    from marketlab.hub.settings import Allowance

    parser = argparse.ArgumentParser(prog="python -m bench flood", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=8, help="requests the other learner sends in each load")
    parser.add_argument("--unlimited", type=int, default=16,
                        help="the flooder's requests at once without the gateway (0 skips that load)")
    args = parser.parse_args(argv or [])
    in_flight = Allowance().in_flight

    with tempfile.TemporaryDirectory(prefix="bench-flood-") as home:
        process, base_url = _start(MODEL_SLOTS, Path(home))
        try:
            model = _model(base_url)
            _victim(base_url, model, 2)  # warm-up: the first request pays for loading
            results = {"alone": (_victim(base_url, model, args.requests), 0)}
            print(f"alone: {results['alone'][0]}", flush=True)
            loads = [(f"flood through the gateway ({in_flight} at once)", in_flight)]
            if args.unlimited > 0:  # 0: skip the slow comparison without the gateway's limit
                loads.append((f"flood without its limit ({args.unlimited} at once)", args.unlimited))
            for name, flooders in loads:
                results[name] = _flooded(base_url, model, args.requests, flooders)
                print(f"{name}: {results[name][0]}", flush=True)
        finally:
            process.terminate()
            process.wait(60)

    alone = statistics.median(results["alone"][0])
    alone_p90 = _p(results["alone"][0], 0.9)
    print(f"Built-in model, --parallel {MODEL_SLOTS} (the gateway's), learner B: {args.requests} short streamed "
          "requests in turn; learner A: lab-sized requests, 120 tokens each, streamed.")
    print(f"{'load':48} {'B median TTFT':>14} {'B p90':>8} {'x alone (median)':>17} {'x alone (p90)':>14} "
          f"{'A replies':>10}")
    for name, (ttfts, sent) in results.items():
        median, p90 = statistics.median(ttfts), _p(ttfts, 0.9)
        print(f"{name:48} {median:13.2f}s {p90:7.2f}s {median / alone:17.2f} {p90 / alone_p90:14.2f} {sent:10d}")
    print("Target: through the gateway, B's first token at most 2x as slow as alone.")


if __name__ == "__main__":
    main()
