"""marketlab.paths is the one place that knows where the checkout is, with an override and a clear error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from marketlab import data, paths
from marketlab.checks import grader_path
from marketlab.errors import MarketlabError

REPO = Path(__file__).resolve().parent.parent


def test_the_checkout_is_the_folder_the_package_was_installed_from() -> None:
    assert paths.checkout() == REPO
    assert paths.labs() == REPO / "labs" and paths.graders() == REPO / "graders"
    assert data.datasets_dir() == REPO / "datasets"


def test_the_environment_names_another_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("labs", "graders", "datasets"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv(paths.CHECKOUT_VARIABLE, str(tmp_path))
    monkeypatch.delenv("MARKETLAB_DATA", raising=False)
    monkeypatch.delenv("MARKETLAB_GRADERS", raising=False)
    assert paths.labs() == tmp_path / "labs"
    assert grader_path() == tmp_path / "graders"
    assert data.datasets_dir() == tmp_path / "datasets"


def test_a_missing_folder_says_where_it_looked_and_how_to_fix_it(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(paths.CHECKOUT_VARIABLE, str(tmp_path))
    monkeypatch.delenv("MARKETLAB_DATA", raising=False)
    with pytest.raises(MarketlabError) as raised:
        data.datasets_dir()
    assert str(tmp_path / "datasets") in raised.value.problem and paths.CHECKOUT_VARIABLE in raised.value.problem
    assert paths.CHECKOUT_VARIABLE in raised.value.fix and "make lab" in raised.value.fix
    assert isinstance(raised.value, FileNotFoundError), "existing `except FileNotFoundError` code keeps working"


def test_no_other_module_works_out_the_checkout() -> None:
    computed = []
    for path in sorted((REPO / "marketlab").rglob("*.py")):
        name = str(path.relative_to(REPO))
        if name == "marketlab/paths.py":
            continue
        if re.search(r"parents\[2\]|__file__\)\.resolve\(\)\.parent\.parent\b(?! / \"reference\")",
                     path.read_text(encoding="utf-8")):
            computed.append(name)
    assert not computed, f"use marketlab.paths instead: {computed}"
