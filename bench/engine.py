"""The portable engine beside a native build of the same llama.cpp, on this processor, in one run.

    python -m bench engine [--rounds 3]

Target (issue 20): the portable build's tokens per second within 15% of a native build (ratio
portable / native at least 0.85), for reading a prompt and for writing a reply. Both wheels come
from scripts/engine.sh (kept in ~/.cache/marketlab/engine; a missing one is compiled first, about
4 minutes each). Each measurement runs in a child process that loads one engine from its own folder,
the same LocalEngine the server uses, one request at a time; rounds alternate portable, native,
portable, ... so that both see the same machine load, and the medians are compared.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.85
PROMPT_WORDS = ("waterproof breathable lightweight jacket with taped seams, adjustable hood, two hand pockets, "
                "a chest pocket and a packable design for hikers who walk in the rain every weekend. ")
DECODE_TOKENS = 128


def _wheel(*args: str) -> str:
    done = subprocess.run(["bash", str(REPO / "scripts" / "engine.sh"), *args, "--wheel-only"],
                          capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"scripts/engine.sh {' '.join(args)} --wheel-only failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def _unpack(wheel: str, into: Path) -> str:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target",
                    str(into), wheel], check=True)
    return str(into)


def _child(engine_path: str) -> None:
    sys.path.insert(0, engine_path)
    from marketlab.llm.config import LOCAL_MODEL
    from marketlab.llm.engine import LocalEngine
    from marketlab.llm.protocol import parse_chat_request

    engine = LocalEngine(n_ctx=2048, slots=1)
    try:
        prompt = {"model": LOCAL_MODEL, "max_tokens": 1, "temperature": 0,
                  "messages": [{"role": "user", "content": PROMPT_WORDS * 12}]}
        started = time.perf_counter()
        read = engine.complete(parse_chat_request(prompt))["usage"]["prompt_tokens"]
        prompt_rate = read / (time.perf_counter() - started)
        write = {"model": LOCAL_MODEL, "max_tokens": DECODE_TOKENS, "temperature": 0.8, "seed": 7,
                 "messages": [{"role": "user", "content": "Write a long story about a tent on a mountain."}]}
        started = time.perf_counter()
        written = engine.complete(parse_chat_request(write))["usage"]["completion_tokens"]
        decode_rate = written / (time.perf_counter() - started)
    finally:
        engine.close()
    import llama_cpp

    print(json.dumps({"prompt_tps": prompt_rate, "decode_tps": decode_rate, "engine": llama_cpp.__file__}))


def _measure(engine_path: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-m", "bench.engine", "--child", engine_path], capture_output=True,
                          text=True, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"The engine in {engine_path} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["engine"].startswith(engine_path), f"loaded {result['engine']}, not the engine in {engine_path}"
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown processor")
    flags = sorted({flag for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
                    for flag in line.split(":", 1)[1].split() if flag.startswith(("avx512", "amx", "avx_vnni"))})
    print(f"processor: {cpu}; beyond AVX2 it has: {', '.join(flags) or 'nothing'}")
    portable_wheel, native_wheel = _wheel(), _wheel("native")
    print(f"portable: {portable_wheel}\nnative:   {native_wheel}")
    with tempfile.TemporaryDirectory(prefix="marketlab-bench-engine-") as tmp:
        engines = {"portable": _unpack(portable_wheel, Path(tmp) / "portable"),
                   "native": _unpack(native_wheel, Path(tmp) / "native")}
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in engines}
        for round_number in range(args.rounds):
            for name, path in engines.items():
                runs[name].append(_measure(path))
                last = runs[name][-1]
                print(f"round {round_number + 1} {name:8s} prompt {last['prompt_tps']:7.1f} tok/s   "
                      f"reply {last['decode_tps']:6.1f} tok/s")
    print()
    verdicts = []
    for key, label in (("prompt_tps", "reading the prompt"), ("decode_tps", "writing the reply")):
        portable = statistics.median(run[key] for run in runs["portable"])
        native = statistics.median(run[key] for run in runs["native"])
        ratio = portable / native
        verdicts.append(ratio >= TARGET_RATIO)
        print(f"{label:20s} portable {portable:7.1f} tok/s, native {native:7.1f} tok/s: ratio {ratio:.2f} "
              f"({'MET' if ratio >= TARGET_RATIO else 'MISSED'}, target >= {TARGET_RATIO})")
    print(f"verdict: {'MET' if all(verdicts) else 'MISSED'} (medians of {args.rounds} alternating rounds, "
          "one request at a time, all cores)")


if __name__ == "__main__":
    main(sys.argv[1:])
