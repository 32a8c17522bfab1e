"""The `marketlab` command: `python -m marketlab` is the same command; errors share one base."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import pytest

from marketlab.course.workspace import WorkspaceError
from marketlab.errors import MarketlabError
from marketlab.llm.errors import LLMSetupError, ModelFileMissingError, PortTakenError, UsageError
from marketlab.llm.protocol import OpenAIError, server_stopping


def test_python_dash_m_marketlab_is_the_marketlab_command():
    by_module = subprocess.run([sys.executable, "-m", "marketlab", "--help"], capture_output=True, text=True)
    assert by_module.returncode == 0, by_module.stderr
    assert by_module.stdout.startswith("usage: marketlab ")
    for command in ("serve", "doctor", "usage", "lab", "course"):
        assert command in by_module.stdout
    script = subprocess.run([sys.executable, "-c", "import sys; from marketlab.cli import main; sys.exit(main())",
                             "--help"], capture_output=True, text=True)
    assert script.stdout == by_module.stdout


def test_a_setup_problem_prints_the_problem_and_the_fix_without_a_traceback(tmp_path):
    env = {**os.environ, "MARKETLAB_HOME": str(tmp_path), "MARKETLAB_PORT": "eighty"}
    done = subprocess.run([sys.executable, "-m", "marketlab", "serve"], capture_output=True, text=True, env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "Problem: MARKETLAB_PORT is 'eighty'" in done.stderr and "How to fix:" in done.stderr


@pytest.mark.parametrize("error, builtin", [
    (LLMSetupError("p", "f"), RuntimeError),
    (PortTakenError("p", "f"), RuntimeError),
    (ModelFileMissingError("p", "f"), RuntimeError),
    (UsageError("p", "f"), ValueError),
    (WorkspaceError(["lab 1 failed"], []), RuntimeError),
    (OpenAIError(404, "no such model", code="model_not_found"), Exception),
    (server_stopping(), Exception),
])
def test_every_model_layer_error_is_a_marketlab_error(error, builtin):
    assert isinstance(error, MarketlabError) and isinstance(error, builtin)
    assert error.problem and str(error).startswith(error.problem)
    copy = pickle.loads(pickle.dumps(error))  # errors cross process boundaries (grading workers)
    assert type(copy) is type(error) and str(copy) == str(error)


def test_the_server_error_keeps_openais_body_shape():
    error = OpenAIError(404, "The model `x` does not exist.", param="model", code="model_not_found")
    assert error.body() == {"error": {"message": "The model `x` does not exist.", "type": "invalid_request_error",
                                      "param": "model", "code": "model_not_found"}}
    assert pickle.loads(pickle.dumps(error)).body() == error.body()


def test_an_unexpected_failure_is_a_problem_and_a_fix_not_a_traceback(tmp_path):
    """Issue 23: every command's failure reads as a problem and a fix (a bug included)."""
    home = tmp_path / "home"
    home.write_text("a file where the marketlab home folder should be")  # mkdir fails: NotADirectoryError...
    done = subprocess.run([sys.executable, "-m", "marketlab", "usage"], capture_output=True, text=True,
                          env={**os.environ, "MARKETLAB_HOME": str(home)})
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.startswith("Problem:") and "How to fix:" in done.stderr
