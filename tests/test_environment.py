"""Environment variables changed for a block come back exactly as they were."""

from __future__ import annotations

import os

import pytest

from marketlab import environment


def test_a_change_holds_inside_the_block_and_is_undone_after_even_on_an_error(monkeypatch) -> None:
    monkeypatch.setenv("ML_TEST_KEPT", "before")
    monkeypatch.setenv("ML_TEST_REMOVED", "there")
    monkeypatch.delenv("ML_TEST_ADDED", raising=False)
    with pytest.raises(RuntimeError), environment.changed(
            {"ML_TEST_KEPT": "during", "ML_TEST_REMOVED": None, "ML_TEST_ADDED": "new"}):
        assert (os.environ["ML_TEST_KEPT"], os.environ.get("ML_TEST_REMOVED"), os.environ["ML_TEST_ADDED"]) == (
            "during", None, "new")
        raise RuntimeError("the block failed")
    assert os.environ["ML_TEST_KEPT"] == "before"
    assert os.environ["ML_TEST_REMOVED"] == "there"
    assert "ML_TEST_ADDED" not in os.environ
