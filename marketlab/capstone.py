"""The capstone: a workflow from your own job, packaged as a folder your team can run without you.

    from marketlab import capstone
    table = capstone.course_table("reviews")       # products, reviews or leads (the key column comes along)
    capstone.package(brief=brief, build_messages=build_messages, schema=Insight, rules=RULES,
                     settings=SETTINGS, checks=CHECKS, acceptance=ACCEPTANCE, text="summary",
                     alerts=ALERTS, readme=README, task="reviews")
    # then, anywhere:  marketlab run my-workflow --input new_reviews.csv --output insights.csv

package() writes my-workflow/ next to the notebook: brief.yaml, workflow.py (Lab 2's format),
evaluate.py (Lab 3's), monitor.py (Lab 4's, over the workflow's weekly results) and README.md.
Each Python file is imported back on its own before package() returns, so a file that depends on
a notebook variable fails here, with a message, not on a colleague's machine.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
from pydantic import BaseModel

from .artifacts import ArtifactError, check_module
from .checks.capstone import FILES, GENERATED, PACKAGE_DIR, TASK_KEYS, task_key

FACTS_TASKS = ("products",)  # tasks whose rows are product facts that faithfulness checks can look up


def course_table(task: str, directory: str | Path | None = None) -> pd.DataFrame:
    """The course table a capstone task runs on (products, reviews or leads)."""
    from . import data

    task_key(task)
    return data.load(task, directory=directory)


def _write(folder: Path, name: str, text: str, needs: str | None = None,
           trial: Callable[[ModuleType], Any] | None = None) -> Path:
    """Write one file of the package; a Python file is imported back, must define `needs`, and pass `trial`."""
    path = folder / name
    path.write_text(text, encoding="utf-8")
    if needs is not None:
        def check(module: ModuleType) -> None:
            if not callable(getattr(module, needs, None)):
                raise AttributeError(f"no {needs}() function")
            if trial is not None:
                trial(module)

        check_module(path, check)
    return path


def _check_alert_metrics(alerts: Sequence[Any], checks: Sequence[Any]) -> None:
    """Every alert watches a rate the workflow's weekly results will have (else it could never fire)."""
    rates = ["pass_rate", "usable_rate", "refusal_rate", "output_words", "cost_per_row",
             *(f"{getattr(c, 'name', '')}_pass_rate" for c in checks)]
    wrong = [a for a in alerts if getattr(a, "metric", None) not in rates]
    if wrong:
        name, metric = getattr(wrong[0], "name", wrong[0]), getattr(wrong[0], "metric", "?")
        raise ArtifactError(f"The alert {name!r} watches {metric!r}, which the workflow's weekly results do not "
                            "have, so it could never fire.", f"Watch one of: {', '.join(rates)}.")


def _readme(readme: str, task: str, text: str, acceptance: Any, alerts: Sequence[Any]) -> str:
    """The learner's README, then the generated part: files, the command, acceptance and alert owners."""
    if not isinstance(readme, str) or len(readme.split()) < 20:
        raise ArtifactError("README is empty or only a few words.",
                            "Write README for a colleague: what the workflow does, for whom, who owns it, and what "
                            "to do when an alert fires.")
    from .run.exitcodes import MEANINGS

    owners = sorted({f"{a.owner} ({a.action})" for a in alerts})
    key = TASK_KEYS[task]
    statuses = [f"- {int(code)}: {meaning}" for code, meaning in MEANINGS.items()]
    return "\n".join([
        readme.strip(), "", GENERATED, "",
        "## Files", "",
        "- `brief.yaml`: the brief the workflow follows.",
        "- `workflow.py`: `run(table, client)`, one result row per input row, failed rows marked.",
        f"- `evaluate.py`: the checks on the `{text}` field and the acceptance criteria.",
        "- `monitor.py`: `monitor(results)` on results gathered over weeks (a `week` column), alerts with owners.",
        "",
        "## Run it", "",
        "```",
        f"marketlab run {PACKAGE_DIR} --input your_table.csv --output results.csv",
        "```", "",
        f"The input needs a `{key}` column (or `--param key=your_id_column`); other column names can be mapped "
        "with `--param 'columns={name_it_needs: your_column}'`. Next to the output: an HTML report with pass "
        "rates by check. The exit status, for a scheduler:", "", *statuses, "",
        f"Acceptance: {acceptance!r}", "",
        "Alerts go to: " + ", ".join(owners) + ".", "",
    ])


def package(*, brief: Any, build_messages: Callable[..., Any], schema: type[BaseModel], rules: Any = None,
            settings: Any = None, checks: Sequence[Any], acceptance: Any, text: str, alerts: Sequence[Any],
            readme: str, task: str, functions: Sequence[Callable[..., Any]] = (),
            here: str | Path | None = None) -> Path:
    """Write the workflow folder (my-workflow/ next to the notebook) and import every file back; its path."""
    from .brief import Brief
    from .evaluate.artifact import evaluator_source
    from .monitor.artifact import monitor_source
    from .workflow.artifact import workflow_source

    task_key(task)
    if not isinstance(brief, Brief):
        raise ArtifactError("brief is not a marketlab Brief.", "Build it with Brief.from_yaml(BRIEF_YAML).")
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        raise ArtifactError("schema is not a pydantic model class.", "Pass the class itself, e.g. schema=Insight.")
    if text not in schema.model_fields:
        raise ArtifactError(f"text={text!r} is not a field of {schema.__name__}.",
                            f"Name the field the checks should read, one of {list(schema.model_fields)}.")
    _check_alert_metrics(alerts, checks)
    folder = Path(here or Path.cwd()) / PACKAGE_DIR
    first_row = course_table(task).iloc[0]

    def builds_messages(module: ModuleType) -> None:  # a notebook-only name fails on the call, not the import
        getattr(module, build_messages.__name__)(module.BRIEF, first_row)

    sources = {
        "workflow.py": (workflow_source(brief, build_messages, schema, rules, settings), "run", builds_messages),
        "evaluate.py": (evaluator_source(checks, {}, acceptance, *functions, text=text,
                                         facts=task in FACTS_TASKS), "evaluate", None),
        "monitor.py": (monitor_source(alerts, runs=True), "monitor", None),
    }
    readme_text = _readme(readme, task, text, acceptance, alerts)
    # Written and imported back in a folder of its own first: a file that fails leaves the last good
    # package as it was, not half replaced.
    with tempfile.TemporaryDirectory(prefix=".my-workflow-", dir=folder.parent) as tmp:
        staged = Path(tmp)
        _write(staged, "brief.yaml", brief.to_yaml())
        for name, (source, needs, trial) in sources.items():
            _write(staged, name, source, needs, trial)
        _write(staged, "README.md", readme_text)
        folder.mkdir(exist_ok=True)
        written = []
        for name in FILES:
            os.replace(staged / name, folder / name)
            written.append(folder / name)
    print(f"Packaged {len(written)} files in {folder}: {', '.join(p.name for p in written)}.")
    print(f"Run it anywhere: marketlab run {PACKAGE_DIR} --input your_table.csv --output results.csv")
    return folder


__all__ = ["course_table", "package"]
