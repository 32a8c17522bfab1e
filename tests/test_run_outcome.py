"""`marketlab run` tells the truth about itself: one outcome record decides the exit status, the summary
line, the output table and the report (issue 23).

Each test runs the command as a user would, on a table of their own, against the scripted endpoint
(or a fake of OpenAI's Batch API, or a local endpoint that refuses everything), and checks the exit
status, the "Outcome:" line, the output table and the report's figures together.
"""

from __future__ import annotations

import re
from html import escape
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from marketlab import cli, data, llm
from marketlab.llm.testing import ScriptedEndpoint
from marketlab.run import ExitCode
from marketlab.run.cli import EXAMPLES
from tests.support.fake_batches import FakeBatchAPI
from tests.support.fake_http import JSONHandler, serving
from tests.support.workflow_folder import (MAPPING, copy_reply, lab02_folder, our_products, product_name,
                                           workflow_needing_column, write_csv)

REPO_ROOT = Path(__file__).resolve().parent.parent
TAKE_HOME = REPO_ROOT / "labs" / "take-home"


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch, fresh_home: Path) -> ScriptedEndpoint:
    """The scripted backend, answering every product with copy that meets Lab 2's rules."""
    endpoint = ScriptedEndpoint(responder=lambda body: copy_reply(product_name(body)))
    monkeypatch.setenv("MARKETLAB_BACKEND", "scripted")
    monkeypatch.setattr(llm, "client", lambda **_: endpoint.client())
    return endpoint


def _run(capsys: pytest.CaptureFixture, *args: object) -> tuple[int, str, str]:
    code = cli.main(["run", *map(str, args)])
    said = capsys.readouterr()
    return code, said.out, said.err


def _outcome(printed: str) -> str:
    lines = [line for line in printed.splitlines() if line.startswith("Outcome: ")]
    assert len(lines) == 1, printed
    return lines[0]


def _report_rows(html: str, heading: str) -> list[list[str]]:
    """The cells of the table after a heading of the report."""
    part = html.split(heading, 1)[1].split("</table>", 1)[0]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in re.findall(r"<tr>(.*?)</tr>", part, re.S)
            if "<td" in row]


def _fact(html: str, name: str) -> str:
    shown = escape(name).replace("&#x27;", "&#39;")  # as jinja2 escapes it
    found = re.search(rf"<th>{re.escape(shown)}</th><td>(.*?)</td>", html)
    assert found, name
    return found.group(1)


# -- an endpoint that refuses everything ----------------------------------------------------------

class Refusing(JSONHandler):
    """A company endpoint that refuses every request (HTTP 400), as a misconfigured gateway does."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.body()
        self.reply(400, {"error": {"message": "This request is not allowed.", "type": "invalid_request_error",
                                   "param": None, "code": "request_refused"}})


@pytest.mark.nbgrader
def test_a_notebook_run_where_the_endpoint_refuses_everything_never_exits_0(tmp_path, monkeypatch, fresh_home,
                                                                            capsys):
    theirs = data.load("products").head(4).rename(columns={"sku": "item", "name": "product_title"})
    source = write_csv(theirs, tmp_path / "theirs.csv")
    out = tmp_path / "subjects.csv"
    with serving(Refusing) as base:
        monkeypatch.setenv("MARKETLAB_BACKEND", "compatible")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{base}/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-refused")
        code, printed, err = _run(capsys, TAKE_HOME / "email-subject-lines.ipynb", "--input", source, "--output",
                                  out, "--param", "key=item", "--param", "columns={name: product_title}",
                                  "--param", "max_rows=null")
    assert code == ExitCode.ROWS_NOT_USABLE, err
    assert _outcome(printed) == ("Outcome: 0 of 4 rows usable (0 ok, 0 repaired, 4 failed, 0 skipped by the "
                                 "budget, 0 not sent); acceptance missed.")
    assert "misses its acceptance criteria: the better version passes every check on 0% of rows" in err
    table = pd.read_csv(out)
    assert table["item"].tolist() == theirs["item"].tolist()
    assert set(table["status_a"]) == set(table["status_b"]) == {"failed"}
    html = out.with_name("subjects.report.html").read_text()
    assert "Exit status 3" in html and _fact(html, "Key column (as your table names it)") == "item"
    assert _fact(html, "Sent, no usable reply (failed)") == "4" and _fact(html, "Usable: ok") == "0"
    keys = [row[0] for row in _report_rows(html, "Rows sent without a usable reply")]
    assert keys == theirs["item"].tolist()  # by their key, not 1, 2, 3
    assert "rejected the request" in html and "HTTP 400" in html
    assert "evaluate.py that Lab 3 saved" not in html  # advice for a folder, not for a notebook


@pytest.mark.nbgrader
def test_a_trial_run_reports_rows_left_out_not_lost(tmp_path, scripted, capsys):
    theirs = data.load("products").head(6)
    source = write_csv(theirs, tmp_path / "theirs.csv")
    out = tmp_path / "results.csv"
    code, printed, err = _run(capsys, TAKE_HOME / "product-descriptions.ipynb", "--input", source, "--output", out)
    assert code == ExitCode.ROWS_NOT_USABLE
    assert _outcome(printed).startswith("Outcome: 3 of 6 rows usable (") and "3 not sent)" in _outcome(printed)
    assert "lost" not in err and "trial run of the first 3 row(s)" in err and "--param max_rows=null" in err
    assert pd.read_csv(out)["sku"].tolist() == theirs["sku"].head(3).tolist()
    html = out.with_name("results.report.html").read_text()
    unsent = _report_rows(html, "Rows never sent or never answered")
    assert [row[0] for row in unsent] == theirs["sku"].tail(3).tolist()
    assert all("left out of this trial run (max_rows = 3)" in row[2] for row in unsent)


# -- a budget that covers a third of the rows ---------------------------------------------------------

def test_a_budget_that_covers_a_third_of_the_rows(tmp_path, scripted, capsys):
    folder = lab02_folder(tmp_path)
    ours = our_products(9)
    source = write_csv(ours, tmp_path / "ours.csv")
    out = tmp_path / "out.csv"
    code, printed, err = _run(capsys, folder, "--input", source, "--output", out, "--param", f"columns={MAPPING}",
                              "--param", "token_budget=1900")
    assert code == ExitCode.ROWS_NOT_USABLE  # acceptance is met, but six rows were never sent
    assert _outcome(printed) == ("Outcome: 3 of 9 rows usable (3 ok, 0 repaired, 0 failed, 6 skipped by the "
                                 "budget, 0 not sent); acceptance met.")
    assert "6 row(s) were never sent: the budget ran out" in err
    table = pd.read_csv(out)
    assert table["status"].value_counts().to_dict() == {"skipped_budget": 6, "ok": 3}
    assert table["product_code"].tolist() == ours["product_code"].tolist()  # their key, their name
    html = out.with_name("out.report.html").read_text()
    assert _fact(html, "Not sent: the budget ran out") == "6" and _fact(html, "Usable: ok") == "3"
    # the never-sent rows are apart, and in no pass rate: 100% of the 3 answered rows
    assert "<b>100%</b> of 3 rows pass every check" in html
    assert [row[0] for row in _report_rows(html, "Rows never sent or never answered")] == \
        ours["product_code"].tail(6).tolist()
    assert "Rows sent without a usable reply" not in html


# -- OpenAI's Batch API: an expired batch, a partly failed one -----------------------------------------

def _batch_client(monkeypatch: pytest.MonkeyPatch, api: FakeBatchAPI) -> None:
    monkeypatch.setenv("MARKETLAB_BACKEND", "scripted")
    monkeypatch.setattr(llm, "client", lambda **_: api.client())


def test_an_expired_batch_reads_as_expired_and_its_rows_as_never_answered(tmp_path, monkeypatch, fresh_home,
                                                                          capsys):
    api = FakeBatchAPI(lambda body: copy_reply(product_name(body)), answer_first=2)
    _batch_client(monkeypatch, api)
    folder = lab02_folder(tmp_path)
    ours = our_products(5)
    source = write_csv(ours, tmp_path / "ours.csv")
    out = tmp_path / "out.csv"
    code, printed, err = _run(capsys, folder, "--input", source, "--output", out, "--param", f"columns={MAPPING}",
                              "--batch-api", "--poll-every", "0.01")
    assert code == ExitCode.ROWS_NOT_USABLE  # not 4: the answered rows meet the acceptance criteria
    assert _outcome(printed) == ("Outcome: 2 of 5 rows usable (2 ok, 0 repaired, 0 failed, 0 skipped by the "
                                 "budget, 3 not sent); acceptance met.")
    assert "batch expired or was cancelled" in err and "Run the same command again" in err
    table = pd.read_csv(out)
    assert table["status"].value_counts().to_dict() == {"failed": 3, "ok": 2}
    never = table[table["status"] == "failed"]
    assert set(never["error_kind"]) == {"not_sent"}
    assert never["error"].str.contains("expired before the provider answered").all()
    assert not never["error"].str.contains("503|internal error").any()
    html = out.with_name("out.report.html").read_text()
    assert "HTTP 503" not in html and "<b>100%</b> of 2 rows pass every check" in html
    assert _fact(html, "Not sent or never answered (trial, expired batch)") == "3"
    assert len(_report_rows(html, "Rows never sent or never answered")) == 3


def test_a_partly_failed_batch_names_its_failed_rows_by_key(tmp_path, monkeypatch, fresh_home, capsys):
    ours = our_products(4)
    broken = ours["title"].iloc[1]
    api = FakeBatchAPI(lambda body: copy_reply(product_name(body)), fail=lambda body: product_name(body) == broken)
    _batch_client(monkeypatch, api)
    folder = lab02_folder(tmp_path)
    source = write_csv(ours, tmp_path / "ours.csv")
    out = tmp_path / "out.csv"
    code, printed, err = _run(capsys, folder, "--input", source, "--output", out, "--param", f"columns={MAPPING}",
                              "--batch-api", "--poll-every", "0.01")
    assert code == ExitCode.ROWS_NOT_USABLE
    # the row was sent and no usable reply came back: it counts against the checks, so acceptance is missed
    assert _outcome(printed) == ("Outcome: 3 of 4 rows usable (3 ok, 0 repaired, 1 failed, 0 skipped by the "
                                 "budget, 0 not sent); acceptance missed.")
    failed_key = ours["product_code"].iloc[1]
    assert f"product_code {failed_key}: " in err
    table = pd.read_csv(out)
    assert table.loc[table["product_code"] == failed_key, "status"].item() == "failed"
    html = out.with_name("out.report.html").read_text()
    rows = _report_rows(html, "Rows sent without a usable reply")
    assert [row[0] for row in rows] == [failed_key] and "HTTP 500" in rows[0][2]
    assert "<b>75%</b> of 4 rows pass every check" in html  # a sent row that failed counts against the pass rate


# -- a table with foreign column names ----------------------------------------------------------------

def test_a_foreign_column_table_keeps_their_key_name_and_a_mapping_error_explains_itself(tmp_path, scripted,
                                                                                         capsys):
    folder = lab02_folder(tmp_path)
    theirs = data.load("products").head(3).rename(columns={"sku": "Item Code", "name": "Product Name",
                                                           "key_specs": "Specs"})
    source = write_csv(theirs, tmp_path / "theirs.csv")
    out = tmp_path / "out.csv"
    code, printed, err = _run(capsys, folder, "--input", source, "--output", out, "--param",
                              "columns={sku: Item Code, key_specs: Specs}")
    # 'Product Name' is not mapped: the copy never names the product, and the run says why
    assert code == ExitCode.ACCEPTANCE_MISSED
    said = " ".join((printed + err).split())
    assert "Your column(s) 'Product Name', 'persona', 'channel_focus' are not read by this workflow" in said
    assert "'name' (optional: named in each request; feeds the faithfulness check)" in said
    assert "map it: --param 'columns={sku: Item Code, key_specs: Specs, name: <your column>}'" in said
    # a required column that is missing stops the run before anything is sent, with the whole picture
    needing = workflow_needing_column(tmp_path / "needing", "tagline")
    calls = scripted.calls
    code, printed, err = _run(capsys, needing, "--input", source, "--output", out, "--param", "key=Item Code")
    assert code == ExitCode.BAD_INPUT and scripted.calls == calls
    assert "'tagline' (required" in err and "'Product Name'" in err and "columns={tagline: your_column}" in err
    code, printed, err = _run(capsys, folder, "--input", source, "--output", out, "--param",
                              "columns={sku: Item Code, key_specs: Specs, name: Product Name}")
    assert code == ExitCode.OK, err
    assert _outcome(printed) == ("Outcome: 3 of 3 rows usable (3 ok, 0 repaired, 0 failed, 0 skipped by the "
                                 "budget, 0 not sent); acceptance met.")
    table = pd.read_csv(out)
    assert table.columns[0] == "Item Code" and "sku" not in table.columns
    assert table["Item Code"].tolist() == theirs["Item Code"].tolist()
    html = out.with_name("out.report.html").read_text()
    assert _fact(html, "Key column (as your table names it)") == "Item Code" and "Exit status 0" in html


# -- a second output path, and rows that broke a rule -----------------------------------------------

def test_saved_rows_belong_to_one_output_and_rule_breaking_rows_are_retried(tmp_path, monkeypatch, fresh_home,
                                                                            capsys):
    ours = our_products(6)
    banned = data.load_brand_voice()["banned_words"][0]
    model = {"breaks_rules": True}

    def reply(body):  # the first product's copy breaks a rule (a banned word) while the model is in that mood
        name = product_name(body)
        return copy_reply(name, f"Truly {banned}.") if name == ours["title"].iloc[0] and model["breaks_rules"] \
            else copy_reply(name)

    endpoint = ScriptedEndpoint(responder=reply)
    monkeypatch.setenv("MARKETLAB_BACKEND", "scripted")
    monkeypatch.setattr(llm, "client", lambda **_: endpoint.client())
    folder = lab02_folder(tmp_path)
    source = write_csv(ours, tmp_path / "ours.csv")
    first = tmp_path / "first.csv"
    common = ("--param", f"columns={MAPPING}", "--param", "repair=false")
    code, printed, _ = _run(capsys, folder, "--input", source, "--output", first, *common, "--param",
                            "token_budget=1600")
    assert code == ExitCode.ROWS_NOT_USABLE
    table = pd.read_csv(first)
    assert table["status"].iloc[0] == "failed" and table["error_kind"].iloc[0] == "rules"
    assert first.with_name("first.checkpoint.jsonl").is_file()  # rows are left: kept for this output
    done = int(table["status"].eq("ok").sum())
    assert done >= 1

    # A second output path starts afresh: none of the first output's rows is reused.
    calls = endpoint.calls
    second = tmp_path / "second.csv"
    code, printed, _ = _run(capsys, folder, "--input", source, "--output", second, *common)
    assert "Reused:" not in printed and "Restored from the checkpoint" not in printed
    assert pd.read_csv(second)["source"].isin(["model", "cache"]).all()
    assert endpoint.calls > calls

    # The first output again, with the budget lifted: its saved rows are reused and said to be; the row that
    # broke a rule is asked for again, not kept.
    model["breaks_rules"] = False  # the model now answers within the rules; the cache still holds the bad reply
    code, printed, err = _run(capsys, folder, "--input", source, "--output", first, *common)
    assert code == ExitCode.OK, err
    again = pd.read_csv(first)
    assert again["status"].eq("ok").all()
    assert int(again["source"].eq("checkpoint").sum()) == done
    saved = first.with_name("first.checkpoint.jsonl").resolve()
    assert f"Reused: {done} row(s) from this output's earlier run ({saved})" in printed
    assert _outcome(printed).startswith("Outcome: 6 of 6 rows usable (6 ok")
    html = first.with_name("first.report.html").read_text()
    assert _fact(html, "Reused, not sent again").startswith(f"{done} row(s), from this output")


# -- --help: the examples run as written; a closed pipe ends quietly -------------------------------------

def test_every_help_example_runs_as_written(tmp_path, monkeypatch, fresh_home, capsys):
    api = FakeBatchAPI(lambda body: copy_reply(product_name(body)))
    _batch_client(monkeypatch, api)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["run", "--help"])
    shown = capsys.readouterr().out
    # What a user has: this checkout's labs, their workflow folder, their own tables.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "labs").symlink_to(REPO_ROOT / "labs")
    lab02_folder(tmp_path).rename(tmp_path / "my-workflow")
    products = data.load("products").head(3)
    for name in ("products.csv", "my_products.csv", "big.csv"):
        products.to_csv(tmp_path / name, index=False)
    products.rename(columns={"name": "title", "sku": "code"}).to_csv(tmp_path / "ours.csv", index=False)
    assert len(EXAMPLES) >= 4
    for example in EXAMPLES:
        assert example in shown
        words = shlex.split(example)
        assert words[:2] == ["marketlab", "run"]
        code = cli.main(words[1:])
        said = capsys.readouterr()
        assert code == ExitCode.OK, (example, said.err)
        assert "Outcome: 3 of 3 rows usable" in said.out, example
        output = Path(words[words.index("--output") + 1])
        assert output.is_file() and output.with_name(output.stem + ".report.html").is_file(), example
    assert "budget_usd" not in shown and "reviews.ipynb" not in shown
    for status in ("0   every row came back usable", "2   nothing was sent", "3   some rows did not come back",
                   "4   every row came back usable, but", "130 the run was interrupted"):
        assert f"  {status}" in shown, status


def test_a_closed_pipe_ends_quietly(tmp_path):
    reader = subprocess.Popen([sys.executable, "-m", "marketlab", "run", "--help"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, cwd=REPO_ROOT)
    reader.stdout.close()  # as `| head -0` does: the reader goes away before the command writes
    _, err = reader.communicate(timeout=60)
    assert b"Traceback" not in err and b"BrokenPipeError" not in err, err.decode()


def test_a_request_the_batch_refused_is_failed_not_never_answered() -> None:
    """Only requests the batch never ran (expired, cancelled) are 'never answered'; a refused one failed."""
    import json as _json

    from marketlab.run.batch import read_answers
    from marketlab.workflow.retry import NOT_ANSWERED_CODE

    lines = [{"custom_id": "a", "response": None, "error": {"code": "batch_expired", "message": "expired"}},
             {"custom_id": "b", "response": None, "error": {"code": "invalid_prompt", "message": "Bad prompt."}}]
    answers = read_answers("\n".join(_json.dumps(line) for line in lines))
    assert answers["a"].body["error"]["code"] == NOT_ANSWERED_CODE
    assert answers["b"].body["error"]["code"] == "invalid_prompt" and "Bad prompt." in answers["b"].body["error"]["message"]
