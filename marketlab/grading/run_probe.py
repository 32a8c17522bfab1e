"""Run a packaged workflow folder the way `marketlab run` does, for a check: `python -I -m marketlab.grading.run_probe`.

The same line protocol as marketlab.grading.workflow_probe: a first line says it started, then one
JSON reply per request: {"op": "rules", "folder": ...} (the workflow's saved Rules, as data), or
{"op": "run", "folder": ..., "table": ..., "client": ..., "params": {...}}. The table is
written to a CSV in this process's own /tmp (a file the workflow has never seen), the folder is
run on it through marketlab.run.run (what `marketlab run` calls), and what came of it is sent back
as data: the exit status, the output read back from the file written, the acceptance criteria,
the budget the workflow declares. The checking side judges all of it (which rows came back, in
which state); the tokens spent it counts on its own side of the model socket, never taken from here.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any


def fast_settings() -> dict[str, Any]:
    """Run settings for a check: no cache or checkpoint between runs, no rate limit, quick retries."""
    from marketlab.workflow import RetryPolicy

    return {"cache": False, "checkpoint": False, "rpm": None, "retry": RetryPolicy(base_delay=0.01, max_delay=0.05)}


def declared_budget(folder: Path) -> dict[str, Any]:
    """The budget the folder's workflow.py saved in SETTINGS (tokens, cost_usd), or nothing."""
    from marketlab.run.package import load_package
    from marketlab.workflow import RunSettings

    try:
        settings = getattr(load_package(folder).workflow, "SETTINGS", None)
    except Exception:  # noqa: BLE001 - run() says what is wrong with the folder
        return {}
    if not isinstance(settings, RunSettings):
        return {}
    return {"tokens": settings.budget.tokens, "cost_usd": settings.budget.cost_usd}


def saved_rules(folder: Path) -> dict[str, Any] | None:
    """The Rules saved in the folder's workflow.py, as data (they shape the checking side's replies)."""
    from marketlab.checks import extract
    from marketlab.workflow import load_workflow

    return extract.rules_data(getattr(load_workflow(folder / "workflow.py"), "RULES", None))


def run_folder(request: dict[str, Any]) -> dict[str, Any]:
    """Run the folder on the table as `marketlab run` would; the outcome, as data."""
    from marketlab.errors import MarketlabError
    from marketlab.grading import wire
    from marketlab.run import RunRequest, read_table, run
    from marketlab.run.exitcodes import exit_code_for

    table = wire.decode(request["table"])
    client = wire.decode(request["client"], learner_side=True)
    work = Path(tempfile.mkdtemp(prefix="unseen-"))
    source = work / "unseen.csv"
    table.to_csv(source, index=False)
    output = work / "out" / "results.csv"
    output.parent.mkdir()
    params = {**fast_settings(), **(request.get("params") or {})}
    outcome: dict[str, Any] = {"exit": None, "problems": [], "output": None, "acceptance": None, "report": False,
                               "declared": declared_budget(Path(request["folder"]))}
    try:
        result = run(RunRequest(Path(request["folder"]), source, output, params, echo=False), client=client)
    except MarketlabError as err:
        outcome.update(exit=int(exit_code_for(err)), problems=[f"{err.problem} {err.fix}".strip()[:400]])
        return outcome
    outcome.update(exit=int(result.exit_code), problems=[str(p)[:400] for p in result.problems[:10]],
                   report=bool(result.report and Path(result.report).is_file()))
    if result.acceptance is not None:
        outcome["acceptance"] = [{"name": c.name, "target": c.target, "reached": c.reached}
                                 for c in result.acceptance.criteria]
    if output.is_file():
        outcome["output"] = read_table(output)
    return outcome


def main(argv: list[str]) -> int:
    """Answer requests until stdin closes; everything the workflow prints goes to stderr."""
    from marketlab.grading import wire
    from marketlab.grading.serve_module import serve_lines

    def answer(_: Any, request: dict[str, Any]) -> dict[str, Any]:
        folder = Path(request["folder"])
        value = saved_rules(folder) if request.get("op") == "rules" else run_folder(request)
        return {"ok": True, "value": wire.encode(value)}

    return serve_lines(lambda: None, answer)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
