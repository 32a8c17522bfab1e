"""`marketlab run NOTEBOOK_OR_FOLDER --input in.csv --output out.csv [--param k=v ...] [--batch-api]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .exitcodes import MEANINGS, ExitCode

DESCRIPTION = """Run a take-home notebook or a packaged workflow folder (workflow.py, brief.yaml and
evaluate.py) on a CSV or Parquet file without opening Jupyter: a progress bar, the run summary,
the output (.csv or .parquet, by its extension) and an evaluation report next to it."""

EXAMPLES = (  # tests/test_run_outcome.py runs each one as written
    "marketlab run labs/take-home/product-descriptions.ipynb --input my_products.csv --output results.csv "
    "--param max_rows=null",
    "marketlab run my-workflow/ --input products.csv --output descriptions.csv",
    "marketlab run my-workflow/ --input ours.csv --output out.parquet --param 'columns={name: title, sku: code}'",
    "marketlab run my-workflow/ --input big.csv --output big-results.csv --batch-api",
)

EPILOG = "exit status (one outcome record decides it, the summary line and the report):\n" + "\n".join(
    f"  {int(code):<4}{MEANINGS[code]}" for code in ExitCode) + """
  When several apply, the first of 130, 2, 1, 3, 4 is the status.

every row ends as one of: ok, repaired (usable), failed (sent, no usable reply), skipped by the budget,
not sent (an expired batch, or left out of a trial run by max_rows), lost (missing from the output).
While rows are left, a run keeps the finished ones beside its output (OUTPUT*.checkpoint.jsonl); they
are reused only by a run of the same input, workflow, model and output, and the summary says how
many; rows that broke a rule are sent again (a folder's --param retry_failed=false keeps them).

examples:
""" + "\n".join(f"  {line}" for line in EXAMPLES) + """
  (--batch-api: half price, answered within 24 h; a take-home notebook runs 3 rows unless max_rows=null)"""


def add_command(commands: Any) -> None:
    """Add `run` to the marketlab command's subcommands."""
    run = commands.add_parser("run", help="run a workflow folder or take-home notebook on a CSV, headless",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("source", metavar="NOTEBOOK_OR_FOLDER",
                     help="a take-home notebook (.ipynb), or a folder with workflow.py")
    run.add_argument("--input", required=True, help="the table to run on (.csv in UTF-8, or .parquet)")
    run.add_argument("--output", required=True, help="where the results go (.csv or .parquet)")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="a parameter for the notebook or workflow (repeat for more); values are read as YAML")
    run.add_argument("--batch-api", action="store_true",
                     help="send the requests through the provider's Batch API: half price, answered within 24 h, "
                          "picked up again if this command is stopped")
    run.add_argument("--poll-every", type=float, default=30.0, metavar="SECONDS",
                     help="with --batch-api: the longest wait between two looks at the batch (default 30)")
    run.add_argument("--quiet", action="store_true", help="no progress bars or messages, only the outcome")
    run.set_defaults(func=main)


def _say(text: str, stream: Any = None) -> None:
    from marketlab.workflow.redact import Redactor

    print(Redactor()(text), file=stream or sys.stdout)


def main(args: argparse.Namespace) -> int:
    """Run what the arguments say and return the exit status; problems are printed, never a stack trace."""
    from marketlab.errors import MarketlabError

    from .batch import BatchOptions
    from .exitcodes import exit_code_for
    from .job import RunRequest, run
    from .params import parse_params

    try:
        if args.poll_every <= 0:
            from .exitcodes import RunInputError

            raise RunInputError(f"--poll-every is {args.poll_every:g}.", "Give a number of seconds above 0.")
        request = RunRequest(Path(args.source), Path(args.input), Path(args.output), parse_params(args.param),
                             BatchOptions(poll_max_s=args.poll_every) if args.batch_api else None, not args.quiet)
        result = run(request)
    except KeyboardInterrupt:
        _say("Interrupted. Run the same command again to resume: finished rows and batches already sent are "
             "picked up, not sent again.", sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except MarketlabError as err:
        _say(f"Problem: {err.problem}" + (f"\nHow to fix: {err.fix}" if err.fix else ""), sys.stderr)
        return int(exit_code_for(err))
    except Exception as err:  # a bug of marketlab's own: one line, and the status says the run failed
        text = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
        _say(f"Problem: marketlab run stopped with an unexpected {type(err).__name__}: {text}", sys.stderr)
        return int(ExitCode.FAILED)
    if result.summary is not None and not args.quiet:
        _say(str(result.summary))
    if result.evaluation is not None:
        _say(f"Evaluation ({result.evaluation.source}): {result.evaluation.pass_rate:.0%} of the "
             f"{len(result.evaluation.table)} answered rows pass every check (rows never sent are not counted).")
    if result.acceptance is not None:
        _say(result.acceptance.describe())
    outcome = result.outcome
    if outcome.reused:
        _say(f"Reused: {outcome.reused} row(s) from {outcome.reused_from or 'an earlier run'}, not sent again.")
    for note in result.notes if args.quiet else []:
        _say(f"Note: {note}", sys.stderr)
    for problem in result.problems:
        _say(f"Problem: {problem}", sys.stderr)
    shown = [p for p in outcome.problem_rows][:10]
    if shown:
        name = result.key or "row"
        _say("Rows not usable: " + "; ".join(f"{name} {p.key}: {(p.reason or p.status).rstrip('.')}" for p in shown)
             + (f"; and {len(outcome.problem_rows) - len(shown)} more (see the report)." if
                len(outcome.problem_rows) > len(shown) else "."), sys.stderr)
    written = [str(p) for p in (result.output, result.report, result.notebook) if p is not None and p.exists()]
    _say(f"Wrote {', '.join(written)}." if written else "Wrote nothing.")
    _say(outcome.headline())
    _say(f"Exit status {int(result.exit_code)}: {result.exit_code.meaning()}.")
    return int(result.exit_code)


__all__ = ["add_command", "main"]
