"""The `marketlab` command."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from . import paths


def _serve(args: argparse.Namespace) -> int:
    from .llm import local

    if args.stop:
        result = local.stop_server()
        print(result.message)
        return 0 if result.outcome in ("stopped", "not_running") else 1
    if args.status:
        return _serve_status()
    url = local.ensure_server()
    print(f"Local model server ready at {url} (stop it with `marketlab serve --stop`).")
    return 0


def _serve_status() -> int:
    from .llm import config, local
    from .llm.selftest import engine_info

    answered = local.status_and_health()
    engine = engine_info()
    built = f" (engine {engine['target']}, llama-cpp-python {engine.get('version', '?')})" if engine else ""
    if answered:
        state, health = answered
        print(f"Running: pid {state['pid']} at {state['url']}{built}.")
        print(_service_figures(health))
        return 0
    crash = local.last_crash()
    if crash:
        print(f"Not running. {crash.problem()}\nHow to fix: {crash.fix()}\nServer log: {config.home() / 'server.log'}")
    else:
        print("Not running.")
    return 1


def _service_figures(health: dict) -> str:
    """Plain lines on how the server has served so far: first tokens, speed, prompt reuse."""
    lines = [f"Slots: {health.get('decoding', 0)} of {health.get('slots', '?')} decoding, "
             f"{health.get('waiting', 0)} request(s) waiting."]
    if health.get("ttft_p90_s") is not None:
        lines.append(f"Time to first token (last {health.get('ttft_recent', 0)} requests): median "
                     f"{health['ttft_p50_s']:.2f} s, 90th percentile {health['ttft_p90_s']:.2f} s.")
    else:
        lines.append("Time to first token: no request answered yet.")
    if health.get("tokens_per_s") is not None:
        lines.append(f"Tokens per second while busy: {health['tokens_per_s']:.1f} "
                     f"({health.get('generated_tokens', 0)} reply tokens in {health.get('busy_s', 0):.0f} s).")
    cache = health.get("prefix_cache") or {}
    if cache.get("limit_bytes"):
        lookups = cache.get("hits", 0) + cache.get("misses", 0)
        rate = f"{cache['hit_rate']:.0%} of {lookups} prompts" if lookups else "no prompt yet"
        lines.append(f"Prompt reuse: {rate} reused a stored start; {cache.get('tokens_reused', 0)} prompt tokens "
                     f"reused, {cache.get('tokens_read', 0)} read; {cache.get('bytes', 0) / 2**20:.0f} of "
                     f"{cache['limit_bytes'] / 2**20:.0f} MB used, {cache.get('evictions', 0)} evicted.")
    elif "prefix_cache" in health:
        lines.append("Prompt reuse: off (--prefix-cache-mb 0).")
    return "\n".join(lines)


def _doctor(args: argparse.Namespace) -> int:
    from .llm.doctor import diagnose, render

    report = diagnose()
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0 if report["ok"] else 1


def _usage(args: argparse.Namespace) -> int:
    import pandas as pd

    from .llm import config, ledger

    table = ledger.summary(days=args.days)
    if table.empty:
        when = "yet" if args.days is None else f"in the last {args.days} day(s)"
        print(f"No model calls recorded {when} in {config.ledger_path()}.")
        return 0
    table["cost_usd"] = table["cost_usd"].map(lambda v: "unknown" if pd.isna(v) else f"${v:,.4f}")
    table["mean_latency_ms"] = table["mean_latency_ms"].round(0).astype("Int64")
    print(table.to_string(index=False))
    print(f"\nLedger: {config.ledger_path()}")
    return 0


def _prepare_workspace(notebook_dir: Path) -> None:
    """Add the student version of every lab missing from `notebook_dir`; never touch what is there."""
    from .course.workspace import WorkspaceError, prepare_workspace

    labs_dir = paths.labs()
    if notebook_dir == labs_dir.resolve():
        print(f"Opening the instructor versions in {labs_dir} (no workspace copies made).")
        return
    try:
        created = prepare_workspace(labs_dir, notebook_dir)
    except WorkspaceError as exc:
        created = exc.created
        for problem in exc.problems:
            print(f"Warning: {problem}", file=sys.stderr)
    added = sorted({path.relative_to(notebook_dir.resolve()).parts[0] for path in created})
    if added:
        print(f"Added to your workspace {notebook_dir}: {', '.join(added)}")
    else:
        print(f"Your workspace {notebook_dir} already has every lab; your work there is unchanged.")


def _lab(args: argparse.Namespace) -> int:
    from .course.workspace import learner_jupyter
    from .llm import LLMSetupError, config, local

    notebook_dir = Path(args.dir).resolve()
    _prepare_workspace(notebook_dir)
    try:
        url = local.ensure_server()
        print(f"Local model ready at {url}")
    except LLMSetupError as exc:
        print(f"Warning: {exc}\nJupyterLab opens anyway; cells that call the model will explain the problem.")
    jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent)) or "jupyter"
    launch = learner_jupyter(notebook_dir, config.home() / "jupyter-learner", jupyter, args.port)
    if launch.as_root:
        print("Note: running as root (as containers and CI do), so JupyterLab starts with --allow-root.")
    print("Starting JupyterLab; open the http://127.0.0.1:... URL it prints below. Ctrl-C twice stops it.")
    sys.stdout.flush()
    os.execvpe(launch.argv[0], launch.argv, launch.env)
    return 0  # not reached


def _days(text: str) -> int:
    """--days: a whole number of 1 or more."""
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; use e.g. --days 7") from None
    if days < 1:
        raise argparse.ArgumentTypeError(f"days must be 1 or more (1 means today only), not {days}; "
                                         "leave --days out to see everything")
    return days


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `marketlab` command."""
    parser = argparse.ArgumentParser(prog="marketlab", description="Hands-on AI labs for marketing teams.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="start, check or stop the embedded local model server")
    group = serve.add_mutually_exclusive_group()
    group.add_argument("--stop", action="store_true", help="stop the server")
    group.add_argument("--status", action="store_true", help="say whether it runs (exit 1 if not)")
    serve.set_defaults(func=_serve)

    doctor = commands.add_parser("doctor", help="check the model backend and say how to fix problems")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.set_defaults(func=_doctor)

    usage = commands.add_parser("usage", help="model calls, tokens and cost by day and model")
    usage.add_argument("--days", type=_days, default=None, help="only the last N days (1 = today)")
    usage.set_defaults(func=_usage)

    lab = commands.add_parser("lab", help="start the local model and JupyterLab on your copies of the labs")
    lab.add_argument("--dir", default=str(paths.checkout() / "workspace"),
                     help="folder JupyterLab opens (default workspace/); labs missing there are added, "
                          "existing files are never overwritten")
    lab.add_argument("--port", type=int, default=None, help="JupyterLab port")
    lab.set_defaults(func=_lab)

    from .run.cli import add_command as add_run

    add_run(commands)

    from .course.cli import add_commands

    add_commands(commands)

    from .hub.cli import add_commands as add_hub

    add_hub(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `marketlab` command (also `python -m marketlab`)."""
    from .errors import MarketlabError

    try:
        args = build_parser().parse_args(argv)  # --help writes here: a closed pipe is caught below
        if args.command == "course":
            from .course.cli import run

            return run(args)
        return args.func(args)
    except MarketlabError as exc:
        print(f"Problem: {exc.problem}" + (f"\nHow to fix: {exc.fix}" if exc.fix else ""), file=sys.stderr)
        return 2
    except BrokenPipeError:
        return _closed_pipe()
    except KeyboardInterrupt:
        print("Stopped (Ctrl-C).", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a command ends in a problem and a fix, never a traceback
        if os.environ.get("MARKETLAB_DEBUG"):
            raise
        print(f"Problem: marketlab failed unexpectedly ({type(exc).__name__}: {str(exc)[:300]}).\n"
              "How to fix: run `marketlab doctor`; if the problem stays, run the command again with "
              "MARKETLAB_DEBUG=1 set and show its output to your instructor.", file=sys.stderr)
        return 1


CLOSED_PIPE_STATUS = 141  # 128 + SIGPIPE, what a shell reports for a command whose reader went away


def _closed_pipe() -> int:
    """The reader of our output went away (`marketlab doctor | head -6`): stop quietly, no traceback.

    Python would try to flush stdout again at exit and print a BrokenPipeError; pointing stdout at
    /dev/null first keeps that quiet (the recipe of the Python docs, signal module, "Note on SIGPIPE").
    """
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return CLOSED_PIPE_STATUS


if __name__ == "__main__":
    sys.exit(main())
