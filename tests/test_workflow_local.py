"""The runner against the real local model server, and a saved workflow.py imported elsewhere."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from marketlab import data, llm, reference
from marketlab.workflow import Limits, Rules, RunSettings, load_workflow, run_batch, save_workflow


class ShortCopy(BaseModel):
    headline: str = Field(description="a headline naming the product", max_length=80)


@pytest.mark.slow
def test_local_model_every_row_back_and_a_rerun_is_served_from_the_cache(local_base_url, fresh_home):
    df = data.load("products").head(2)
    brief = reference.load_brief()
    # One short field under the server's JSON grammar: the reply always has the right shape, so a
    # failure here is the runner's fault, not the model's luck. Only the shape is asserted, never the wording.
    kwargs = dict(brief=brief, max_tokens=60, workers=1, progress=False, show_summary=False, include=["sku"],
                  request_timeout=120)
    before = len(llm.usage_table())
    first = run_batch(df, reference.build_messages, ShortCopy, llm.client(), llm.model_name(), **kwargs)
    assert first["status"].tolist() == ["ok", "ok"], first["error"].tolist()
    assert list(first["sku"]) == list(df["sku"])
    assert (first["source"] == "model").all() and (first["prompt_tokens"] > 100).all()
    assert first["headline"].map(lambda h: 0 < len(h.strip()) <= 80).all()
    made = len(llm.usage_table()) - before
    assert made == first["calls"].sum() >= 2
    again = run_batch(df, reference.build_messages, ShortCopy, llm.client(), llm.model_name(), **kwargs)
    assert len(llm.usage_table()) - before == made  # not one more call reached the server
    assert again["headline"].tolist() == first["headline"].tolist() and (again["calls"] == 0).all()


def build_messages(brief, record):
    """Reference-style builder with one extra line."""
    messages = brief.to_messages(record)
    messages[-1]["content"] += "\nName the product first."
    return messages


def test_saved_workflow_runs_in_a_clean_process(tmp_path: Path, fresh_home: Path):
    brief = reference.load_brief()
    rules = Rules(max_words={"headline": 12}).with_banned_words(["cheap"])
    settings = RunSettings(max_tokens=60, limits=Limits(workers=2))
    paths = save_workflow(brief, build_messages, ShortCopy, rules, settings, here=tmp_path)
    assert paths[0] == tmp_path / "workflow.py"
    assert "SETTINGS = RunSettings(max_tokens=60, limits=Limits(workers=2))" in paths[0].read_text()
    module = load_workflow(paths[0])
    assert module.SETTINGS == settings and module.RULES == rules and module.MODEL is None
    # the keywords learners know still save, onto the same settings
    save_workflow(brief, build_messages, ShortCopy, rules, {"workers": 2, "max_tokens": 60}, here=tmp_path)
    assert load_workflow(paths[0]).SETTINGS == settings
    script = textwrap.dedent(f"""
        import importlib.util, json
        from marketlab import data
        from marketlab.llm.testing import ScriptedEndpoint, Fault
        spec = importlib.util.spec_from_file_location("workflow", {str(paths[0])!r})
        workflow = importlib.util.module_from_spec(spec); spec.loader.exec_module(workflow)
        endpoint = ScriptedEndpoint([Fault.malformed_json()])
        out = workflow.run(data.load("products").head(3), endpoint.client(), model="scripted", progress=False,
                           show_summary=False, cache=False, checkpoint=False, include=["sku"])
        print(json.dumps(sorted(out["status"])), "Name the product first." in
              endpoint.requests[0]["messages"][-1]["content"], endpoint.requests[0]["max_tokens"],
              list(out["sku"]) == list(data.load("products").head(3)["sku"]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ['["ok",', '"ok",', '"repaired"]', "True", "60", "True"]

