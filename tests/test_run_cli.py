"""`marketlab run`: a packaged workflow folder or a notebook on a table it has never seen, headless.

Lab 2's own workflow.py runs on a CSV whose columns differ from the course data, after a
--param columns change; bad inputs stop with a problem, a fix and exit status 2, never a stack
trace; the output is CSV or Parquet; the report escapes what the learner and the model wrote;
the exit status says when acceptance is missed or rows are lost. Where the point is the command,
not the model, replies come from the scripted endpoint; the Batch API runs end to end against
the real local server, including a client killed in the middle of its polling.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import openai
import pandas as pd
import pytest
from pydantic import BaseModel, Field

from marketlab import cli, llm, reference
from marketlab.llm.testing import ScriptedEndpoint
from marketlab.run import ExitCode
from tests.support.workflow_folder import (MAPPING, THEIR_NAMES, copy_reply, lab02_folder, our_products,
                                           product_name, workflow_losing_a_row, workflow_needing_column, write_csv)

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch, fresh_home: Path) -> ScriptedEndpoint:
    """The scripted backend, answering every product with copy that meets Lab 2's rules."""
    endpoint = ScriptedEndpoint(responder=lambda body: copy_reply(product_name(body)))
    monkeypatch.setenv("MARKETLAB_BACKEND", "scripted")
    monkeypatch.setattr(llm, "client", lambda **_: endpoint.client())
    return endpoint


def _run(*args: str) -> int:
    return cli.main(["run", *map(str, args)])


def test_lab02_workflow_runs_on_our_columns_after_a_columns_param(tmp_path, scripted, capsys):
    folder = lab02_folder(tmp_path)
    ours = our_products(3)
    source = write_csv(ours, tmp_path / "ours.csv")
    out = tmp_path / "out" / "descriptions.csv"
    out.parent.mkdir()

    assert _run(folder, "--input", source, "--output", out) == ExitCode.BAD_INPUT
    problem = capsys.readouterr().err
    assert "identifies each row" in problem and "--param 'columns={sku: your_id_column}'" in problem
    assert not out.exists() and scripted.calls == 0

    assert _run(folder, "--input", source, "--output", out, "--param", f"columns={MAPPING}",
                "--param", "workers=2") == ExitCode.OK, capsys.readouterr().err
    result = pd.read_csv(out)
    assert list(result["product_code"]) == list(ours["product_code"])  # the key keeps our name and joins back
    assert (result["status"] == "ok").all()
    # our 'title' column reached the workflow as the 'name' its brief writes the task with
    asked = sorted(product_name(body) for body in scripted.requests)
    assert asked == sorted(ours["title"])
    report = out.with_name("descriptions.report.html").read_text()
    assert "data:image/png;base64," in report and "pass rate (every check)" in report
    printed = capsys.readouterr().out
    assert "Workflow run: 3 rows" in printed and "Exit status 0" in printed


def test_parquet_output_has_the_same_rows(tmp_path, scripted):
    folder = lab02_folder(tmp_path)
    ours = our_products(2)
    source = write_csv(ours, tmp_path / "ours.csv")
    assert _run(folder, "--input", source, "--output", tmp_path / "out.parquet", "--param",
                f"columns={MAPPING}") == ExitCode.OK
    result = pd.read_parquet(tmp_path / "out.parquet")
    assert list(result["product_code"]) == list(ours["product_code"]) and result["description"].str.len().min() > 100
    # and Parquet works as an input too
    ours.to_parquet(tmp_path / "ours.parquet")
    assert _run(folder, "--input", tmp_path / "ours.parquet", "--output", tmp_path / "again.csv", "--param",
                f"columns={MAPPING}") == ExitCode.OK


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (arguments after the folder, a phrase the problem must contain)."""
    good = write_csv(our_products(2), tmp_path / "ours.csv")
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "header.csv").write_text("product_code,title,specs\n", encoding="utf-8")
    (tmp_path / "latin1.csv").write_bytes("product_code,title\nRO-1,Tente légère\n".encode("cp1252"))
    out = str(tmp_path / "out.csv")
    mapping = f"columns={MAPPING}"
    return {
        "missing file": (["--input", str(tmp_path / "nope.csv"), "--output", out], "does not exist"),
        "empty file": (["--input", str(tmp_path / "empty.csv"), "--output", out], "is empty"),
        "header only": (["--input", str(tmp_path / "header.csv"), "--output", out], "no rows"),
        "not UTF-8": (["--input", str(tmp_path / "latin1.csv"), "--output", out], "not UTF-8"),
        "param without =": (["--input", str(good), "--output", out, "--param", "workers"], "name=value"),
        "unknown param": (["--input", str(good), "--output", out, "--param", "wrokers=2"], "wrokers"),
        "bad setting value": (["--input", str(good), "--output", out, "--param", mapping, "--param", "workers=0"],
                              "workers"),
        "mapping to a missing column": (["--input", str(good), "--output", out, "--param",
                                         "columns={sku: product_id}"], "no column 'product_id'"),
        "unknown output format": (["--input", str(good), "--output", str(tmp_path / "out.xlsx")], ".csv or .parquet"),
    }


def test_bad_inputs_say_what_to_change_and_exit_2(tmp_path, scripted, capsys):
    folder = lab02_folder(tmp_path)
    for name, (args, phrase) in _bad_inputs(tmp_path).items():
        code = _run(folder, *args)
        err = capsys.readouterr().err
        assert code == ExitCode.BAD_INPUT, (name, err)
        assert "Problem:" in err and "How to fix:" in err and phrase in err, (name, err)
        assert "Traceback" not in err, name
    assert not (tmp_path / "out.csv").exists() and scripted.calls == 0


def test_a_column_the_workflow_needs_is_named_with_the_fix(tmp_path, scripted, capsys):
    folder = workflow_needing_column(tmp_path, "tagline")
    source = write_csv(our_products(2), tmp_path / "ours.csv")
    assert _run(folder, "--input", source, "--output", tmp_path / "out.csv", "--param",
                "key=product_code") == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert "'tagline'" in err and "--param 'columns={tagline: your_column}'" in err
    # it lists the workflow's columns with what each feeds, and the user's own columns
    assert "'tagline' (required" in err and "'product_code'" in err and "'title'" in err
    assert not (tmp_path / "out.csv").exists()


def test_the_real_command_exits_2_without_a_traceback(tmp_path):
    (tmp_path / "latin1.csv").write_bytes("sku,name\nRO-1,Tente légère\n".encode("cp1252"))
    done = subprocess.run([sys.executable, "-m", "marketlab", "run", str(lab02_folder(tmp_path)), "--input",
                           str(tmp_path / "latin1.csv"), "--output", str(tmp_path / "out.csv")],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "MARKETLAB_BACKEND": "scripted"})
    assert done.returncode == 2, done.stderr
    assert "line 2" in done.stderr and "CSV UTF-8" in done.stderr and "Traceback" not in done.stderr


def test_acceptance_decides_the_exit_status(tmp_path, monkeypatch, fresh_home, capsys):
    ours = our_products(3)
    forgets = ours["title"].iloc[1]

    def reply(body):  # one description of three does not name its product
        name = product_name(body)
        return copy_reply(name).replace(f"The {name} is", "This one is") if name == forgets else copy_reply(name)

    endpoint = ScriptedEndpoint(responder=reply)
    monkeypatch.setenv("MARKETLAB_BACKEND", "scripted")
    monkeypatch.setattr(llm, "client", lambda **_: endpoint.client())
    source = write_csv(ours, tmp_path / "ours.csv")
    strict = lab02_folder(tmp_path / "strict", min_pass_rate=0.9)
    assert _run(strict, "--input", source, "--output", tmp_path / "strict.csv", "--param",
                f"columns={MAPPING}") == ExitCode.ACCEPTANCE_MISSED
    printed = capsys.readouterr()
    assert "pass rate (every check) is 67% where at least 90% is required" in printed.err
    assert pd.read_csv(tmp_path / "strict.csv")["status"].eq("ok").all()  # the output is written all the same
    report = (tmp_path / "strict.report.html").read_text()
    assert f"does not name {forgets}" in report
    lenient = lab02_folder(tmp_path / "lenient", min_pass_rate=0.6)
    assert _run(lenient, "--input", source, "--output", tmp_path / "lenient.csv", "--param",
                f"columns={MAPPING}") == ExitCode.OK


def test_a_workflow_that_loses_a_row_exits_3(tmp_path, scripted, capsys):
    folder = workflow_losing_a_row(tmp_path)
    source = write_csv(our_products(3), tmp_path / "ours.csv")
    assert _run(folder, "--input", source, "--output", tmp_path / "out.csv", "--param",
                f"columns={MAPPING}") == ExitCode.ROWS_NOT_USABLE
    err = capsys.readouterr().err
    assert "1 row(s) are missing from the output" in err and "RO-1003: missing from the output" in err
    assert len(pd.read_csv(tmp_path / "out.csv")) == 2


def test_report_escapes_learner_and_model_text_and_keeps_secrets_out(tmp_path, monkeypatch, fresh_home):
    secret = "sk-" + "proj" + "Q7x" * 12  # built at run time: no key-shaped text is stored in the repository
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    hostile = "<img src=x onerror=alert(1)>"
    endpoint = ScriptedEndpoint(responder=lambda body: copy_reply(product_name(body), f"{hostile} {secret}"))
    monkeypatch.setenv("MARKETLAB_BACKEND", "scripted")
    monkeypatch.setattr(llm, "client", lambda **_: endpoint.client())
    folder = lab02_folder(tmp_path, min_pass_rate=1.0, title="Copy <script>alert('brief')</script>")
    (folder / "evaluate.py").write_text((folder / "evaluate.py").read_text().replace(
        'return None\n', 'return "tagged <b>bold</b> by " + product["sku"]\n', 1))
    source = write_csv(our_products(2), tmp_path / "ours.csv")
    assert _run(folder, "--input", source, "--output", tmp_path / "out.csv", "--param",
                f"columns={MAPPING}") == ExitCode.ACCEPTANCE_MISSED
    html = (tmp_path / "out.report.html").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#39;brief&#39;)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    for written in (tmp_path / "out.report.html", tmp_path / "out.csv"):
        assert secret not in written.read_text(), written.name


def _notebook(path: Path, body: str) -> Path:
    parameters = nbformat.v4.new_code_cell('input_path = "products.csv"\noutput_path = "out.csv"\nsuffix = "!"')
    parameters.metadata["tags"] = ["parameters"]
    cells = [parameters, nbformat.v4.new_code_cell(textwrap.dedent(body))]
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3",
                                                                               "display_name": "Python 3"}})
    nbformat.write(notebook, path)
    return path


@pytest.mark.slow
@pytest.mark.nbgrader
def test_a_notebook_runs_through_papermill_and_is_kept_for_the_record(tmp_path, fresh_home, capsys):
    notebook = _notebook(tmp_path / "take-home.ipynb", """
        import pandas as pd
        from marketlab.run import read_table
        table = read_table(input_path)
        table["headline"] = table["title"] + suffix
        table.to_csv(output_path, index=False)
        """)
    source = write_csv(our_products(3), tmp_path / "ours.csv")
    out = tmp_path / "headlines.csv"
    assert _run(notebook, "--input", source, "--output", out, "--param", "suffix= (new)") == ExitCode.OK
    assert list(pd.read_csv(out)["headline"]) == [f"{t} (new)" for t in our_products(3)["title"]]
    executed = nbformat.read(tmp_path / "headlines.executed.ipynb", as_version=4)
    injected = next(c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert str(source.resolve()) in injected.source and "(new)" in injected.source
    assert (tmp_path / "headlines.report.html").exists()
    capsys.readouterr()

    assert _run(notebook, "--input", source, "--output", out, "--param", "sufix=x") == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert "--param sufix is not set in the parameters cell" in err and "input_path, output_path, suffix" in err

    broken = _notebook(tmp_path / "broken.ipynb", "raise ValueError('the column mapping names no title column')")
    assert _run(broken, "--input", source, "--output", tmp_path / "b.csv") == ExitCode.FAILED
    err = capsys.readouterr().err
    assert "ValueError: the column mapping names no title column" in err and "b.executed.ipynb" in err


# -- the Batch API, end to end against the real local server -------------------------------------------


class ShortCopy(BaseModel):
    headline: str = Field(description="a headline naming the product", max_length=80)


def _short_folder(root: Path) -> Path:
    """A workflow folder saved by the real save_workflow: one short field, so the grammar bounds every reply."""
    from marketlab.workflow import RunSettings, save_workflow

    folder = root / "short"
    folder.mkdir()
    save_workflow(reference.load_brief(), reference.build_messages, ShortCopy, None,
                  RunSettings(max_tokens=60, repair=False), here=folder)
    return folder


def _server_batches(client: openai.OpenAI) -> list:
    return [b for b in client.batches.list(limit=100).data if (b.metadata or {}).get("marketlab_digest")]


@pytest.mark.slow
def test_batch_api_run_resumes_after_the_client_is_killed(tmp_path, local_base_url, fresh_home):
    from marketlab import data

    folder = _short_folder(tmp_path)
    products = data.load("products").head(3)
    source = write_csv(products, tmp_path / "products.csv")
    out = tmp_path / "out.csv"
    state = tmp_path / "out.batch.json"
    server = openai.OpenAI(base_url=local_base_url, api_key="local-no-key-needed")
    before = {b.id for b in _server_batches(server)}
    command = [sys.executable, "-m", "marketlab", "run", str(folder), "--input", str(source), "--output", str(out),
               "--batch-api", "--poll-every", "1", "--param", "cache=false"]
    env = {**os.environ, "MARKETLAB_HOME": str(fresh_home)}

    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not state.exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the batch was never sent"
            time.sleep(0.1)
        batch_id = json.loads(state.read_text())["batches"][0]["id"]
        running = server.batches.retrieve(batch_id)
        assert running.status in ("validating", "in_progress"), running.status  # the client is mid-poll
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.communicate()
    assert state.exists() and not out.exists()

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    # 0, or 3 when the model's reply for a row could not be used: the outcome line says which
    assert second.returncode in (0, 3), second.stdout + second.stderr
    failed = int(re.search(r"Outcome: .*?(\d+) failed", second.stdout).group(1))
    assert (second.returncode == 3) == (failed > 0), second.stdout
    assert f"Picking up batch {batch_id}" in second.stdout
    result = pd.read_csv(out)
    assert list(result["sku"]) == list(products["sku"]) and result["status"].isin(["ok", "failed"]).all()
    assert not state.exists()  # the run finished: nothing left to resume

    sent = [b for b in _server_batches(server) if b.id not in before]
    assert [b.id for b in sent] == [batch_id]  # one batch, sent once: the second client did not send it again
    assert sent[0].request_counts.total == 3 and sent[0].status == "completed"

    # what the batch held is exactly what run_batch sends for these rows
    lines = [json.loads(line) for line in server.files.content(sent[0].input_file_id).text.splitlines()]
    direct = ScriptedEndpoint()
    from marketlab.workflow import load_workflow

    load_workflow(folder / "workflow.py").run(products, direct.client(), model=llm.model_name(), progress=False,
                                              show_summary=False, cache=False, checkpoint=False, include=["sku"])
    canonical = sorted(json.dumps(body, sort_keys=True) for body in direct.requests)
    assert sorted(json.dumps(line["body"], sort_keys=True) for line in lines) == canonical
    assert {line["url"] for line in lines} == {"/v1/chat/completions"}


def test_batch_budget_is_checked_before_anything_is_sent(tmp_path, local_base_url, fresh_home, capsys):
    folder = _short_folder(tmp_path)
    source = write_csv(our_products(3).rename(columns={v: k for k, v in THEIR_NAMES.items()}),
                       tmp_path / "products.csv")
    server = openai.OpenAI(base_url=local_base_url, api_key="local-no-key-needed")
    before = len(_server_batches(server))
    assert _run(folder, "--input", source, "--output", tmp_path / "out.csv", "--batch-api",
                "--param", "token_budget=1000") == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert "Nothing was sent" in err and "the budget is 1,000" in err
    assert len(_server_batches(server)) == before and not (tmp_path / "out.batch.json").exists()


def test_batch_api_on_a_service_without_one_says_so(tmp_path, scripted, capsys):
    folder = lab02_folder(tmp_path)
    source = write_csv(our_products(2), tmp_path / "ours.csv")
    assert _run(folder, "--input", source, "--output", tmp_path / "out.csv", "--batch-api", "--param",
                f"columns={MAPPING}") == ExitCode.BAD_INPUT
    assert "has no Batch API" in capsys.readouterr().err
