"""The modules of `marketlab run` import each other at the top, with no cycle hidden inside a function.

RunRequest and RunResult live in marketlab.run.request, a leaf the runners, the report and job.run()
all import; each of these modules is importable first, in a fresh interpreter, and none imports a
module of marketlab.run inside a function.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import marketlab.run

RUN = Path(marketlab.run.__file__).parent
# run/cli.py imports the runners when the command runs, not when `marketlab --help` builds its parser.
LATE_FOR_STARTUP = {"cli.py"}


@pytest.mark.parametrize("module", ["marketlab.run.job", "marketlab.run.notebook", "marketlab.run.package",
                                    "marketlab.run.request", "marketlab.run.report", "marketlab.tables",
                                    "marketlab.errors", "marketlab.artifacts"])
def test_the_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_no_module_of_marketlab_run_imports_another_inside_a_function() -> None:
    late = []
    for path in sorted(RUN.glob("*.py")):
        if path.name in LATE_FOR_STARTUP:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom) and (inner.level or (inner.module or "").startswith(
                            "marketlab.run")):
                        late.append(f"{path.name}:{inner.lineno}")
    assert not late, f"move these imports to the top of their module (or the shared type to a leaf): {late}"


@pytest.mark.parametrize("module", ["marketlab.workflow", "marketlab.evaluate", "marketlab.evaluate.rubric",
                                    "marketlab.evaluate.verify", "marketlab.workflow.validate"])
def test_the_workflow_and_evaluate_import_each_other_at_the_top(module: str) -> None:
    """The runner and its reply rules use evaluate's checks; evaluate's judge runs through the runner."""
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    package = Path(marketlab.run.__file__).parent.parent
    late = []
    for folder, other in (("workflow", "marketlab.evaluate"), ("evaluate", "marketlab.workflow")):
        for path in sorted((package / folder).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    late += [f"{folder}/{path.name}:{inner.lineno}" for inner in ast.walk(node)
                             if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith(other)]
    assert not late, f"move these imports to the top of their module: {late}"


@pytest.mark.parametrize("first", ["marketlab.workflow", "marketlab.workflow.validate", "marketlab.evaluate",
                                   "marketlab.evaluate.rubric", "marketlab.evaluate.verify", "marketlab.run"])
def test_evaluate_judge_is_the_function_whichever_side_is_imported_first(first: str) -> None:
    code = (f"import {first}\n"
            "from marketlab import evaluate, workflow\n"
            "from marketlab.evaluate import Rubric, judge\n"
            "assert callable(evaluate.judge) and evaluate.judge is judge, evaluate.judge\n"
            "assert callable(workflow.run_batch) and evaluate.TONE_RUBRIC.name\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_run_request_and_result_keep_their_old_import_paths() -> None:
    from marketlab.run import RunRequest, RunResult
    from marketlab.run.job import RunRequest as JobRequest
    from marketlab.run.job import RunResult as JobResult
    from marketlab.run.request import RunRequest as LeafRequest

    assert RunRequest is JobRequest is LeafRequest and RunResult is JobResult
