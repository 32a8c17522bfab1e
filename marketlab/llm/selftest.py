"""The engine's self-test: answer a short request in a child process before anything says "ready".

    python -m marketlab.llm.selftest                     # the installed engine (set-up runs this)
    python -m marketlab.llm.selftest --engine-path DIR   # a trial engine installed in DIR (engine-native)

A compiled engine that uses an instruction the processor cannot run loads fine and dies on the first
computation, killing whatever process it is in. So the test runs in a child process, on the same
engine class the server uses, with a prompt long enough for the batched matrix kernels and two
decoded tokens for the single-token ones; the parent reads how the child ended (marketlab.llm.exits).
The server runs the same `probe` on itself before it answers /health (server.main).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .exits import REBUILD_COMMAND, Ending

ENGINE_RECORD = ".marketlab-engine"  # written into the venv by scripts/engine.sh
CHILD_TIMEOUT_S = 300.0
_PROBE_TEXT = ("Write one short sentence about a waterproof hiking jacket for a customer who walks in the rain "
               "every weekend, mentions the hood, the pockets and the weight, and wants to stay dry and warm.")


def checkout() -> Path:
    """The marketlab checkout (where `make engine` runs): marketlab.paths.checkout()."""
    from .. import paths

    return paths.checkout()


def engine_info(prefix: str | None = None) -> dict[str, str]:
    """What scripts/engine.sh recorded about the installed engine (target, version, build settings)."""
    path = Path(prefix or sys.prefix) / ENGINE_RECORD
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split("=", 1) for line in lines if "=" in line)


def rebuild_command(info: dict[str, str] | None = None) -> str:
    """The command that replaces the installed engine with one this processor runs."""
    target = (engine_info() if info is None else info).get("target", "")
    if target == "x86-64-v3":  # the portable build faulted: only the baseline target is left
        return f"{REBUILD_COMMAND} ENGINE_TARGET=x86-64"
    return REBUILD_COMMAND


def fix_for(ending: Ending) -> str:
    """The fix for an engine process that ended this way, naming the exact rebuild command."""
    return ending.fix(str(checkout()), rebuild_command())


def probe(engine: Any) -> dict[str, Any]:
    """One short request through a loaded engine: tokens read in one batch, then two decoded."""
    from .config import LOCAL_MODEL
    from .protocol import parse_chat_request

    started = time.perf_counter()
    reply = engine.complete(parse_chat_request({
        "model": LOCAL_MODEL, "max_tokens": 2, "temperature": 0,
        "messages": [{"role": "user", "content": _PROBE_TEXT}]}))
    return {"seconds": round(time.perf_counter() - started, 3), "tokens": reply["usage"]["completion_tokens"]}


@dataclass(frozen=True)
class SelfTest:
    """How the child process ended, what it said, and what to do."""

    ending: Ending
    detail: dict[str, Any]
    output: str

    @property
    def ok(self) -> bool:
        return self.ending.returncode == 0 and bool(self.detail.get("ok"))

    def problem(self) -> str:
        if self.ok:
            return ""
        if self.ending.signal is not None:
            return f"The built-in model's engine stopped during its self-test: {self.ending.sentence()}."
        last = self.output.strip().splitlines()[-1:] or ["no output"]
        return f"The built-in model's engine failed its self-test ({self.ending.describe()}): {last[0]}"

    def fix(self) -> str:
        if self.ending.signal is not None:
            return fix_for(self.ending)
        return (f"Run `{REBUILD_COMMAND}` in {checkout()} to reinstall the engine; if that does not help, "
                "run `marketlab doctor` and show its output to your instructor.")


def run(*, engine_path: str | None = None, python: str = sys.executable,
        timeout: float = CHILD_TIMEOUT_S) -> SelfTest:
    """Run the self-test in a child process and say how it ended."""
    command = [python, "-m", "marketlab.llm.selftest", "--child"]
    if engine_path:
        command += ["--engine-path", engine_path]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout if isinstance(exc.stdout, str) else ""
        return SelfTest(Ending(1), {}, f"{output}\nno answer within {timeout:.0f} s")
    detail: dict[str, Any] = {}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            try:
                detail = json.loads(line)
            except ValueError:
                continue
            break
    return SelfTest(Ending(done.returncode), detail, done.stdout + done.stderr)


def _child(engine_path: str | None) -> int:
    if engine_path:
        sys.path.insert(0, engine_path)
    from .engine import LocalEngine
    from .llama_adapter import location

    engine = LocalEngine(n_ctx=512, slots=1)
    try:
        result = probe(engine)
    finally:
        engine.close()
    print(json.dumps({"ok": True, **result, "engine": str(location())}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Self-test the built-in model's engine in a child process.")
    parser.add_argument("--engine-path", help="a folder with a trial llama_cpp package to test instead")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.engine_path)
    result = run(engine_path=args.engine_path)
    info = engine_info() if not args.engine_path else {"target": "trial"}
    if result.ok:
        print(f"Engine self-test passed ({info.get('target', 'engine of unknown build')}: "
              f"a short answer in {result.detail.get('seconds', 0):.2f} s).")
        return 0
    print(f"Problem: {result.problem()}\nHow to fix: {result.fix()}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
