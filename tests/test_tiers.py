"""The tiers are complete: every test of a heavy file carries the marker of what it needs.

`make test-fast` deselects the tiers of pyproject.toml; a heavy test that lost its marker would slip
into it. conftest.py marks tests by the fixtures they request, fails an unmarked test that starts the
built-in model, and refuses to run at all when a test of a heavy file (HEAVY_FILES) lacks its tier.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from conftest import HEAVY_FILES, REPO_ROOT, TIERS, unmarked_heavy_tests

FAST = "not (" + " or ".join(TIERS) + ")"


def test_the_tiers_are_the_markers_pyproject_declares_and_make_test_fast_deselects() -> None:
    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    assert set(TIERS) <= {marker.split(":")[0].strip() for marker in declared}
    assert f"FAST := {FAST}" in (REPO_ROOT / "Makefile").read_text(), "make test-fast deselects exactly the tiers"


def test_every_heavy_file_is_there() -> None:
    assert all((REPO_ROOT / name).is_file() for name in HEAVY_FILES), "a renamed file keeps its entry"


class _Item:
    def __init__(self, path: Path, *markers: str) -> None:
        self.path, self.nodeid, self.markers = path, f"{path.name}::test_x", set(markers)

    def get_closest_marker(self, name: str) -> object | None:
        return name if name in self.markers else None


def test_the_collection_check_names_a_heavy_test_without_its_tier() -> None:
    attacks = REPO_ROOT / "tests" / "test_grading_attacks.py"
    notebook = REPO_ROOT / "labs" / "00-first-steps" / "00-first-steps.ipynb"
    items = [_Item(attacks, "sandbox"), _Item(attacks, "nbgrader"), _Item(notebook),
             _Item(REPO_ROOT / "tests" / "test_brief.py")]
    assert unmarked_heavy_tests(items) == [  # type: ignore[arg-type]  # stand-ins for pytest.Item
        "test_grading_attacks.py::test_x (needs sandbox)", "00-first-steps.ipynb::test_x (needs model)"]


def test_this_session_marked_every_heavy_test(request: pytest.FixtureRequest) -> None:
    assert unmarked_heavy_tests(request.session.items) == []
