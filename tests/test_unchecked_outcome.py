"""Issue 22's third outcome through the runner: a reply in which no check recognised a claim is 'unchecked',
shown apart in the run summary, and never counted as passed in the run's evaluation or in monitoring."""

from __future__ import annotations

import json

import pandas as pd
from pydantic import BaseModel

from marketlab.evaluate import faithfulness
from marketlab.llm.testing import ScriptedEndpoint
from marketlab.run.evaluation import from_run_checks
from marketlab.workflow import run_batch
from marketlab.workflow.summary import summarize

REPLIES = {"Kettle": "A kettle for your kitchen.",  # nothing a check could hold against the facts
           "Bottle": "This bottle is BPA-free and dishwasher safe."}  # claims the facts do not make


class Copy(BaseModel):
    description: str


def _reply(body: dict) -> str:
    text = json.dumps(body["messages"])
    return json.dumps({"description": next(v for k, v in REPLIES.items() if k in text)})


def test_a_reply_with_nothing_to_check_is_unchecked_and_never_a_pass() -> None:
    table = pd.DataFrame({"sku": ["K1", "B1"], "name": ["Kettle", "Bottle"],
                          "key_specs": ["Capacity: 1.7 l", "Capacity: 0.5 l; Dishwasher safe: no"]})
    client = ScriptedEndpoint(responder=_reply).client(max_retries=0)
    out = run_batch(table, lambda row: [{"role": "user", "content": f"Describe the {row['name']}."}], Copy, client,
                    model="scripted", checks=[faithfulness(vocabulary=None)], show_summary=False, cache=False,
                    checkpoint=False, progress=False)
    assert out["checks"].tolist() == ["unchecked", "failed"], out[["checks", "check_reason"]]
    summary = summarize(out)
    assert summary.unchecked == 1 and summary.checks_passed == 0
    assert "Unchecked: 1 usable row(s)" in str(summary)
    evaluation = from_run_checks(out, None)
    assert evaluation is not None and len(evaluation.table) == 1, "the unchecked row is in no pass rate"
    assert evaluation.rates == {"faithfulness": 0.0}
