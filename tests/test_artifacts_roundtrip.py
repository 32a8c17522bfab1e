"""workflow.py, evaluate.py and monitor.py go through the one "save, import back, load" of marketlab.artifacts.

Each is saved next to the notebook and into the shared folder, imported back on its own, loaded again
by path, and works; a missing file and a file without its function are errors with a fix.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest
from pydantic import BaseModel, Field

from marketlab import artifacts, data, reference
from marketlab.evaluate import Acceptance, length
from marketlab.evaluate.artifact import load_evaluator, save_evaluator
from marketlab.monitor import AlertRule
from marketlab.monitor.artifact import load_monitor, save_monitor
from marketlab.workflow import Rules, load_workflow, save_workflow


class Copy(BaseModel):
    description: str = Field(description="the web description", max_length=900)


@pytest.fixture
def shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "shared"
    monkeypatch.setenv("MARKETLAB_ARTIFACTS", str(folder))
    return folder


def _round_trip(save: list[Path], load: ModuleType, name: str, here: Path, shared: Path, capsys) -> None:
    assert save == [here / name, shared / name], "next to the notebook, and in the shared folder"
    assert save[0].read_text() == save[1].read_text()
    assert capsys.readouterr().out.startswith("Saved your ")
    assert load.__file__ == str(here / name)


def test_a_workflow_saves_imports_back_and_loads(tmp_path: Path, shared: Path, capsys) -> None:
    brief = reference.load_brief()
    rules = Rules(max_words={"description": 80})
    paths = save_workflow(brief, reference.build_messages, Copy, rules, {"workers": 2}, here=tmp_path)
    loaded = load_workflow(paths[0])
    _round_trip(paths, loaded, "workflow.py", tmp_path, shared, capsys)
    assert loaded.BRIEF == brief and loaded.RULES == rules and loaded.SETTINGS.limits.workers == 2
    assert loaded.Copy.model_json_schema() == Copy.model_json_schema() and callable(loaded.run)
    assert load_workflow(paths[0]) is not loaded, "a fresh copy each time, never cached"


def test_an_evaluator_saves_imports_back_loads_and_evaluates(tmp_path: Path, shared: Path, capsys) -> None:
    paths = save_evaluator([length()], {"over_length": "length"}, Acceptance(min_pass_rate=0.5), here=tmp_path)
    loaded = load_evaluator(paths[0])
    _round_trip(paths, loaded, "evaluate.py", tmp_path, shared, capsys)
    products = data.load("products").head(2)
    outputs = pd.DataFrame({"sku": products["sku"], "text": ["Too short.", "word " * 80]})
    table = loaded.evaluate(outputs, products)
    assert list(table["sku"]) == list(products["sku"]) and "passed" in table.columns
    assert loaded.DEFECT_CHECKS == {"over_length": "length"}


def test_a_monitor_saves_imports_back_loads_and_alerts(tmp_path: Path, shared: Path, capsys) -> None:
    rule = AlertRule("Any bad week", "effectiveness_rate", "outside_limits", owner="Analyst", action="review")
    paths = save_monitor([rule], here=tmp_path)
    loaded = load_monitor(paths[0])
    _round_trip(paths, loaded, "monitor.py", tmp_path, shared, capsys)
    assert loaded.RULES == [rule]
    alerts = loaded.monitor(data.load("campaign_weekly"))
    assert isinstance(alerts, pd.DataFrame) and set(alerts["owner"]) <= {"Analyst"}


@pytest.mark.parametrize("load, noun, fix", [(load_workflow, "workflow", "the notebook's save cell"),
                                             (load_evaluator, "evaluator", "Lab 3's save cell"),
                                             (load_monitor, "monitor", "Lab 4's save cell")])
def test_a_missing_file_says_which_and_where_it_comes_from(tmp_path: Path, load, noun: str, fix: str) -> None:
    with pytest.raises(artifacts.ArtifactNotFoundError) as missing:
        load(tmp_path / "nothing.py")
    assert missing.value.problem == f"No {noun} file at {tmp_path / 'nothing.py'}."
    assert missing.value.fix == f"Run {fix} first."
    assert isinstance(missing.value, FileNotFoundError)


def test_a_saved_file_without_its_function_is_refused_with_the_reason(tmp_path: Path, shared: Path) -> None:
    kind = artifacts.ModuleFile("report.py", "report", "report", "the report cell")
    with pytest.raises(artifacts.ArtifactError, match="cannot be imported on its own: AttributeError: no report "
                                                       "function"):
        kind.save("def other():\n    return 1\n", here=tmp_path)
    assert kind.save("def report():\n    return 2\n", here=tmp_path)[0].is_file()
    assert kind.load(tmp_path / "report.py").report() == 2
