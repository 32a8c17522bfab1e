"""The tiers are complete: every test of a heavy file carries the marker of what it needs.

`make test-fast` deselects the tiers of pyproject.toml; a heavy test that lost its marker would slip
into it. conftest.py marks tests by the fixtures they request and fails an unmarked test that starts
the built-in model; this checks the files whose every test needs a resource, by collecting them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import TIERS

REPO = Path(__file__).resolve().parent.parent
FAST = "not (" + " or ".join(TIERS) + ")"
# Files whose every test needs a resource, and the tier each must carry.
HEAVY = {
    "tests/test_course_pipeline.py": "nbgrader",
    "tests/test_grading_attacks.py": "sandbox",
    "tests/test_grading_boundary.py": "sandbox",
    "tests/test_sandbox_limits.py": "sandbox",
    "tests/test_course_postgres.py": "postgres",
    "tests/test_course_cohort.py": "nbgrader",
    "tests/test_course_feedback_report.py": "nbgrader",
    "tests/test_engine.py": "model",
    "tests/test_llm_local.py": "model",
    "tests/test_llm_concurrency.py": "model",
    "tests/test_llm_refusals.py": "nbgrader",
    "tests/test_hub.py": "hub",
    "labs/00-first-steps/00-first-steps.ipynb": "model",
}


PLUGIN = """
def pytest_collection_finish(session):
    for item in session.items:
        print("TIERS", item.nodeid, ",".join(sorted(m.name for m in item.iter_markers())), sep="\\t")
"""


def _markers(tmp_path: Path) -> dict[str, set[str]]:
    """Each test of the heavy files with the markers it carries, from one collection."""
    (tmp_path / "tier_report.py").write_text(PLUGIN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "-p", "tier_report", *HEAVY], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    found = [line.split("\t") for line in done.stdout.splitlines() if line.startswith("TIERS\t")]
    return {words[1]: set(words[2].split(",")) for words in found}


def test_the_tiers_are_the_markers_pyproject_declares() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    names = {marker.split(":")[0].strip() for marker in declared}
    assert set(TIERS) <= names
    makefile = (REPO / "Makefile").read_text()
    assert f"FAST := {FAST}" in makefile, "make test-fast deselects exactly the tiers"


def test_every_test_of_a_heavy_file_carries_its_tier(tmp_path: Path) -> None:
    markers = _markers(tmp_path)
    for path, tier in HEAVY.items():
        tests = {node: names for node, names in markers.items() if node.split("::")[0] == path}
        assert tests, f"nothing collected from {path}"
        unmarked = sorted(node for node, names in tests.items() if tier not in names)
        assert not unmarked, f"tests of {path} without the {tier} marker (make test-fast would run them): {unmarked}"
