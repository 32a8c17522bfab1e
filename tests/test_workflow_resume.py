"""A run killed for real (SIGKILL, mid-batch) resumes from its checkpoint and loses no row."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from marketlab import data
from marketlab.llm.testing import ScriptedEndpoint
from marketlab.workflow import run_batch

from test_workflow import Copy, build

ROWS = 30
CHILD = textwrap.dedent("""
    import sys
    from marketlab import data
    from marketlab.llm.testing import ScriptedEndpoint
    from marketlab.workflow import run_batch
    sys.path.insert(0, {tests!r})
    from test_workflow import Copy, build
    df = data.load("products").head({rows})
    run_batch(df, build, Copy, ScriptedEndpoint(delay_s=0.15).client(), "scripted", workers=2,
              checkpoint={path!r}, cache=False, progress=False, show_summary=False)
    print("finished")
""")


def test_a_killed_run_resumes_and_loses_no_row(tmp_path: Path, fresh_home: Path):
    path = tmp_path / "run.jsonl"
    script = CHILD.format(tests=str(Path(__file__).parent), rows=ROWS, path=str(path))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=os.environ.copy())
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if path.exists() and len(path.read_text().splitlines()) >= 8:
                break
            assert child.poll() is None, child.stderr.read().decode()
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert b"finished" not in child.stdout.read()
    kept = sum(1 for line in path.read_text().splitlines() if line.endswith("}}"))  # whole lines only
    assert 8 <= kept < ROWS

    endpoint = ScriptedEndpoint()
    df = data.load("products").head(ROWS)
    out = run_batch(df, build, Copy, endpoint.client(), "scripted", workers=2, checkpoint=path, cache=False,
                    progress=False, show_summary=False)
    assert len(out) == ROWS and list(out.index) == list(df.index) and (out["status"] == "ok").all()
    assert (out["source"] == "checkpoint").sum() == kept
    assert endpoint.calls == ROWS - kept  # finished rows were not sent again
    assert not path.exists()
