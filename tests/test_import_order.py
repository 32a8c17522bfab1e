"""The modules of `marketlab run` import each other at the top, with no cycle hidden inside a function.

RunRequest and RunResult live in marketlab.run.request, a leaf the runners, the report and job.run()
all import; each of these modules is importable first, in a fresh interpreter, and none imports a
module of marketlab.run inside a function.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import marketlab.run

RUN = Path(marketlab.run.__file__).parent
# run/cli.py imports the runners when the command runs, not when `marketlab --help` builds its parser.
LATE_FOR_STARTUP = {"cli.py"}

# A Python process that has imported the third-party libraries marketlab uses (never a marketlab module),
# then forks a child for each piece of code it is sent: the child is a fresh interpreter as far as marketlab
# is concerned (no module of it loaded, so a cycle among them shows as it would at first import), without
# paying two to four seconds of pandas, scipy and openai start-up per test.
WARM = """
import importlib, json, os, sys, traceback
for name in ("numpy", "pandas", "scipy.stats", "sklearn", "pydantic", "openai", "httpx2", "jinja2", "matplotlib",
             "nbformat", "jsonschema", "yaml", "diskcache", "psutil", "tqdm", "pyarrow"):
    try:
        importlib.import_module(name)
    except ImportError:
        pass
assert not [m for m in sys.modules if m.split(".")[0] == "marketlab"], "the warm process imported marketlab"
for line in sys.stdin:
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read)
        os.dup2(write, 2)
        try:
            exec(compile(json.loads(line), "<test>", "exec"), {"__name__": "__main__"})
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(1)
        sys.stderr.flush()
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as errors:
        err = errors.read()
    status = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    print(json.dumps({"returncode": status, "stderr": err}), flush=True)
"""


class Fresh:
    """Runs code as the first thing a new interpreter does with marketlab (see WARM)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", WARM], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)

    def run(self, code: str) -> subprocess.CompletedProcess[str]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(code) + "\n")
        self.process.stdin.flush()
        reply = self.process.stdout.readline()
        assert reply, "the warm interpreter ended"
        done = json.loads(reply)
        return subprocess.CompletedProcess([code], done["returncode"], "", done["stderr"])

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def fresh() -> Iterator[Fresh]:
    warm = Fresh()
    try:
        yield warm
    finally:
        warm.close()


def test_the_warm_interpreter_reports_a_failed_import(fresh: Fresh) -> None:
    """The fork-per-test helper must not hide a failure: a broken import fails, a good one passes."""
    assert fresh.run("import marketlab.errors").returncode == 0
    broken = fresh.run("import marketlab.errors\nimport marketlab.no_such_module")
    assert broken.returncode == 1 and "No module named 'marketlab.no_such_module'" in broken.stderr
    assert fresh.run("import sys\nassert 'marketlab' not in sys.modules").returncode == 0


@pytest.mark.parametrize("module", ["marketlab.run.job", "marketlab.run.notebook", "marketlab.run.package",
                                    "marketlab.run.request", "marketlab.run.report", "marketlab.tables",
                                    "marketlab.errors", "marketlab.artifacts"])
def test_the_module_imports_first_in_a_fresh_interpreter(module: str, fresh: Fresh) -> None:
    done = fresh.run(f"import {module}")
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
def test_the_workflow_and_evaluate_import_each_other_at_the_top(module: str, fresh: Fresh) -> None:
    """The runner and its reply rules use evaluate's checks; evaluate's judge runs through the runner."""
    done = fresh.run(f"import {module}")
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
def test_evaluate_judge_is_the_function_whichever_side_is_imported_first(first: str, fresh: Fresh) -> None:
    code = (f"import {first}\n"
            "from marketlab import evaluate, workflow\n"
            "from marketlab.evaluate import Rubric, judge\n"
            "assert callable(evaluate.judge) and evaluate.judge is judge, evaluate.judge\n"
            "assert callable(workflow.run_batch) and evaluate.TONE_RUBRIC.name\n")
    done = fresh.run(code)
    assert done.returncode == 0, done.stderr[-2000:]


def test_run_request_and_result_keep_their_old_import_paths() -> None:
    from marketlab.run import RunRequest, RunResult
    from marketlab.run.job import RunRequest as JobRequest
    from marketlab.run.job import RunResult as JobResult
    from marketlab.run.request import RunRequest as LeafRequest

    assert RunRequest is JobRequest is LeafRequest and RunResult is JobResult


def test_only_the_llama_adapter_imports_llama_cpp() -> None:
    """llama-cpp-python is reached through marketlab.llm.llama_adapter alone, so an upgrade is checked in one
    place (tests/test_llama_contract.py) rather than found by failures across the suite."""
    package = Path(marketlab.run.__file__).parent.parent
    adapter = package / "llm" / "llama_adapter.py"

    def imports_llama_cpp(node: ast.AST) -> bool:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
        return any(name == "llama_cpp" or name.startswith("llama_cpp.") for name in names)

    found = {path.relative_to(package).as_posix() for path in sorted(package.rglob("*.py"))
             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if imports_llama_cpp(node)}
    assert "llm/llama_adapter.py" in found, f"{adapter} no longer imports llama_cpp: update this test"
    assert found == {"llm/llama_adapter.py"}, \
        f"call llama-cpp-python through marketlab.llm.llama_adapter only: {sorted(found - {'llm/llama_adapter.py'})}"
