"""The grading workers' fork server loads what the course's graders import, once for every worker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from marketlab.course.autograde import grader_imports
from marketlab.grading import preload

REPO_GRADERS = Path(__file__).resolve().parent.parent / "graders"


def test_the_graders_marketlab_imports_are_read_not_run(tmp_path: Path) -> None:
    (tmp_path / "lab90.py").write_text("from __future__ import annotations\nimport json, csv as table\n"
                                       "from marketlab.checks import CheckResult, lab00\nfrom . import sibling\n"
                                       "def check():\n    import marketlab.evaluate\n")
    (tmp_path / "lab91.py").write_text("raise SystemExit('never run')\nimport marketlab.commission\n")
    (tmp_path / "lab92.py").write_text("def broken(:\n")  # its own worker reports it; the others still load
    names = grader_imports(SimpleNamespace(graders_dir=tmp_path))
    assert names == ["marketlab.checks", "marketlab.checks.CheckResult", "marketlab.checks.lab00",
                     "marketlab.commission"]


def test_the_course_graders_name_what_each_lab_needs() -> None:
    names = grader_imports(SimpleNamespace(graders_dir=REPO_GRADERS))
    assert {"marketlab.data", "marketlab.checks.lab00", "marketlab.checks.lab04",
            "marketlab.checks.capstone"} <= set(names)
    assert "pandas" not in names  # marketlab's modules bring it; nothing else is preloaded


def test_the_server_loads_every_module_it_can_and_skips_the_rest() -> None:
    code = ("import os, sys\n"
            f"os.environ[{preload.VARIABLE!r}] = 'json, marketlab.checks.CheckResult,no_such_module,,decimal'\n"
            "import marketlab.grading.preload as p\n"
            "print(sorted(m for m in ('json', 'decimal') if m in sys.modules), p.VARIABLE in os.environ)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["['decimal',", "'json']", "False"]


@pytest.mark.parametrize("body", ["raise RuntimeError('broken at import')", "raise SystemExit(3)"])
def test_a_module_that_fails_to_load_is_skipped_not_raised(tmp_path: Path, monkeypatch, body: str) -> None:
    (tmp_path / "fails_on_import.py").write_text(body + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert preload.load("fails_on_import,json") == ["json"]


WORKER = """
import json, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace

from marketlab.course import autograde

if __name__ == "__main__":
    context = autograde._pool_context(SimpleNamespace(graders_dir=Path(sys.argv[1])))
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        found = pool.submit(eval, "[m in __import__('sys').modules for m in ('marketlab.commission', 'planted')]"
                                  " + [__import__('sys').modules['pandas'].__file__]").result()
    print(json.dumps(found))
"""


def test_workers_start_with_the_graders_modules_and_nothing_from_the_current_folder(tmp_path: Path) -> None:
    """A learner's pandas.py in the folder the instructor runs autograde from is never imported."""
    graders, here = tmp_path / "graders", tmp_path / "where-autograde-runs"
    graders.mkdir()
    here.mkdir()
    (graders / "lab90.py").write_text("from marketlab import commission\nimport planted\n")
    (here / "pandas.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w').close()\n")
    script = tmp_path / "start_pool.py"
    script.write_text(WORKER)
    done = subprocess.run([sys.executable, str(script), str(graders)], cwd=here, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    commission, planted, pandas_file = json.loads(done.stdout)
    assert commission, "the graders' marketlab module was not loaded before the worker started"
    assert not planted, "a grader's import outside marketlab was preloaded"
    assert not (tmp_path / "imported").exists() and not pandas_file.startswith(str(here)), pandas_file
