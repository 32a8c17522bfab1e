"""The lint and type gate: `ruff check marketlab` and `mypy marketlab`, as configured in pyproject.toml.

It runs in the fast tier, so `make test-fast`, `make test` and CI all run it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    executable = BIN / tool
    if not executable.exists():
        pytest.fail(f"{tool} is not installed in {BIN}: it is part of the test extra (make test installs it, "
                    f"or {BIN / 'pip'} install -e '.[test]').", pytrace=False)
    return subprocess.run([str(executable), *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing_in_the_package() -> None:
    done = _run("ruff", "check", "--no-cache", "marketlab")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_nothing_in_the_package() -> None:
    done = _run("mypy", "marketlab")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_type_ignore_says_which_error_and_why() -> None:
    """`# type: ignore[code]  # reason`: the code keeps it narrow, the reason says why it cannot be fixed."""
    bare = []
    for path in sorted((REPO / "marketlab").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "type: ignore" in line and not re.search(r"type: ignore\[[\w,\s-]+\]\s+#\s*\S", line):
                bare.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not bare, "a type: ignore without its error code and a reason:\n" + "\n".join(bare)
