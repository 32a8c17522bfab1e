"""The grading workers' fork server loads what the course's graders import, once for every worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from marketlab.course.autograde import grader_imports
from marketlab.grading import preload

REPO_GRADERS = Path(__file__).resolve().parent.parent / "graders"


def test_the_graders_imports_are_read_not_run(tmp_path: Path) -> None:
    (tmp_path / "lab90.py").write_text("from __future__ import annotations\nimport json, csv as table\n"
                                       "from marketlab.checks import CheckResult, lab00\nfrom . import sibling\n"
                                       "def check():\n    import sqlite3\n")
    (tmp_path / "lab91.py").write_text("raise SystemExit('never run')\nimport decimal\n")
    (tmp_path / "lab92.py").write_text("def broken(:\n")  # its own worker reports it; the others still load
    names = grader_imports(SimpleNamespace(graders_dir=tmp_path))
    assert names == ["json", "csv", "marketlab.checks", "marketlab.checks.CheckResult", "marketlab.checks.lab00",
                     "decimal"]


def test_the_course_graders_name_what_each_lab_needs() -> None:
    names = grader_imports(SimpleNamespace(graders_dir=REPO_GRADERS))
    assert {"pandas", "marketlab.checks.lab00", "marketlab.checks.lab04", "marketlab.checks.capstone"} <= set(names)


def test_the_server_loads_every_module_it_can_and_skips_the_rest() -> None:
    code = ("import os, sys\n"
            f"os.environ[{preload.VARIABLE!r}] = 'json, marketlab.checks.CheckResult,no_such_module,,decimal'\n"
            "import marketlab.grading.preload as p\n"
            "print(sorted(m for m in ('json', 'decimal') if m in sys.modules), p.VARIABLE in os.environ)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["['decimal',", "'json']", "False"]


def test_a_module_that_fails_to_load_is_skipped_not_raised(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "raises_on_import.py").write_text("raise RuntimeError('broken at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert preload.load("raises_on_import,json") == ["json"]
