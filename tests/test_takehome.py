"""The take-home notebooks (labs/take-home/) on a learner's own table, headless, and the helpers they share.

Each notebook runs under `marketlab run` (papermill) with the scripted backend on a CSV whose
columns differ from the course data, after a --param columns change: every input row comes back,
under the learner's own key column. Bad inputs (a missing file, an empty or non-UTF-8 CSV, a
wrong mapping) stop with a problem, a fix and a non-zero exit, never a stack trace.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pytest

from marketlab import cli, data, takehome
from marketlab.run import ExitCode

TAKE_HOME = Path(__file__).resolve().parent.parent / "labs" / "take-home"
ROWS = 4  # more than the notebooks' trial default of 3, so max_rows=null must really run them all


def _their_table(dataset: str, renames: dict[str, str]) -> pd.DataFrame:
    """A course dataset's first rows with the learner's own column names, and one row exported twice."""
    rows = data.load(dataset).head(ROWS)
    return pd.concat([rows, rows.head(1)], ignore_index=True).rename(columns=renames)


# notebook, dataset, our name -> their name, the columns param, their key
CASES = {
    "product-descriptions": ("products", {"sku": "product_code", "name": "title"}, "{name: title}", "product_code"),
    "email-subject-lines": ("products", {"sku": "item", "name": "product_title"}, "{name: product_title}", "item"),
    "review-insights": ("reviews", {"review_id": "rid", "text": "comment", "sentiment": "tone"},
                        "{text: comment, sentiment: tone}", "rid"),
    "lead-notes": ("leads", {"lead_id": "account", "company": "account_name"}, "{company: account_name}", "account"),
}


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch, fresh_home: Path) -> Path:
    """The scripted backend for the notebook's kernel (papermill starts it with this environment)."""
    monkeypatch.setenv("MARKETLAB_BACKEND", "scripted")
    return fresh_home


def _run(*args: object) -> int:
    return cli.main(["run", *map(str, args)])


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.nbgrader
def test_each_notebook_runs_headless_on_their_columns_and_keeps_their_key(name, tmp_path, scripted, capsys):
    dataset, renames, columns, key = CASES[name]
    theirs = _their_table(dataset, renames)
    source = tmp_path / "theirs.csv"
    theirs.to_csv(source, index=False)
    out = tmp_path / "results.csv"
    code = _run(TAKE_HOME / f"{name}.ipynb", "--input", source, "--output", out, "--param", f"columns={columns}",
                "--param", f"key={key}", "--param", "max_rows=null")
    assert code == ExitCode.OK, capsys.readouterr()
    results = pd.read_csv(out)
    assert results.columns[0] == key
    assert results[key].tolist() == theirs[key].tolist()  # one row per input row, in order: they join back
    assert out.with_name("results.executed.ipynb").is_file()
    history = pd.read_csv(takehome.history_path(out))
    assert history["run"].tolist() == [1] and int(history["rows"].iloc[0]) >= ROWS


def test_a_wrong_mapping_stops_before_any_model_call_with_exit_2_and_command_line_advice(tmp_path, scripted, capsys):
    theirs = data.load("products").head(2).rename(columns={"name": "title"})
    source = tmp_path / "theirs.csv"
    theirs.to_csv(source, index=False)
    out = tmp_path / "results.csv"
    holders = set(Path(tempfile.gettempdir()).glob("marketlab-run-*"))  # where the notebook's verdict would go
    code = _run(TAKE_HOME / "product-descriptions.ipynb", "--input", source, "--output", out,
                "--param", "columns={name: product_title}")
    assert code == ExitCode.BAD_INPUT
    assert set(Path(tempfile.gettempdir()).glob("marketlab-run-*")) <= holders, "a refused run left a folder"
    said = capsys.readouterr()
    assert "'product_title'" in said.err and "'title'" in said.err and "--param 'columns={name:" in said.err
    assert "parameters cell" not in said.err and "Traceback" not in said.err  # command-line words, not Jupyter's
    assert not out.exists()


def test_a_key_the_table_does_not_have_exits_2_before_the_notebook_runs(tmp_path, scripted, capsys):
    theirs = data.load("products").head(2).rename(columns={"sku": "Item Code"})
    source = tmp_path / "theirs.csv"
    theirs.to_csv(source, index=False)
    out = tmp_path / "results.csv"
    assert _run(TAKE_HOME / "lead-notes.ipynb", "--input", source, "--output", out) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert "key=lead_id" in err and "'Item Code'" in err and "--param key=" in err
    assert "parameters cell" not in err and not out.exists() and not out.with_name("results.executed.ipynb").exists()


@pytest.mark.parametrize("content, expected", [
    (None, "does not exist"),
    (b"", "is empty"),
    (b"sku,name\nRO-1,Caf\xe9 pack\n", "not UTF-8"),
    (b"sku,name\n", "no rows"),
])
def test_bad_input_files_stop_before_the_notebook_with_a_fix(content, expected, tmp_path, scripted, capsys):
    source = tmp_path / "theirs.csv"
    if content is not None:
        source.write_bytes(content)
    code = _run(TAKE_HOME / "lead-notes.ipynb", "--input", source, "--output", tmp_path / "results.csv")
    assert code == ExitCode.BAD_INPUT
    problem = capsys.readouterr().err
    assert expected in problem and "How to fix" in problem
    with pytest.raises(takehome.TakeHomeError) as caught:  # the same file, opened from Jupyter
        takehome.load_input(source, key="sku", columns={}, needs={"name": "the product's name"})
    assert expected in caught.value.problem and "parameters cell" in caught.value.fix


def test_load_input_maps_columns_checks_needs_and_gives_their_key_back(tmp_path):
    source = tmp_path / "theirs.csv"
    pd.DataFrame({"code": ["A", "B", "C"], "title": ["x", "y", "z"], "notes": ["", "n", ""]}).to_csv(source,
                                                                                                   index=False)
    table = takehome.load_input(source, key="code", columns={"sku": "code", "name": "title"},
                                needs={"name": "the product's name"}, max_rows=2)
    assert list(table.rows.columns[:2]) == ["sku", "name"] and len(table.rows) == 2 and table.rows_total == 3
    back = table.restore(table.rows.assign(headline=["h1", "h2"]))
    assert back.columns[0] == "code" and back["code"].tolist() == ["A", "B"]

    with pytest.raises(takehome.TakeHomeError) as caught:
        takehome.load_input(source, key="code", columns={}, needs={"name": "the product's name"})
    assert "needs a column 'name'" in caught.value.problem and "'title'" in caught.value.problem
    assert "columns = {'name': '<your column>'}" in caught.value.fix
    with pytest.raises(takehome.TakeHomeError, match="key = ref names a column"):
        takehome.load_input(source, key="ref", columns={}, needs={})
    with pytest.raises(takehome.TakeHomeError, match="max_rows"):
        takehome.load_input(source, key="code", columns={}, needs={}, max_rows=0)
    pd.DataFrame({"code": ["A", "B", "A"], "title": ["x", "y", "x"]}).to_csv(source, index=False)
    copied = takehome.load_input(source, key="code", columns={}, needs={})  # one record exported twice
    assert copied.rows["code"].tolist() == ["A", "B"] and copied.rows_total == 3
    assert copied.restore(copied.rows.assign(note=["a", "b"]))["note"].tolist() == ["a", "b", "a"]
    pd.DataFrame({"code": ["A", "A"], "title": ["x", "y"]}).to_csv(source, index=False)
    with pytest.raises(takehome.TakeHomeError, match="'A' in more than one row"):
        takehome.load_input(source, key="code", columns={}, needs={})


def test_the_fields_check_passes_only_fields_the_row_has():
    check = takehome.fields_check()
    row = {"company": "Kenwood Inn", "employees": 263, "region": "Canada"}
    assert check("company, employees", row, "web").passed
    failed = check("company; budget", row, "web")
    assert not failed.passed and "budget" in failed.evidence and "company" not in failed.evidence
    assert not check("  ,  ", row, "web").passed


def test_policy_labels_come_from_the_policy_tables(tmp_path):
    labels = takehome.policy_labels(data.datasets_dir() / "labelling_policy.md")
    assert labels["sentiment"] == data.SENTIMENTS and set(labels["topic"]) == set(data.TOPICS)
    policy = tmp_path / "policy.md"
    policy.write_text("## Sentiment labels\n| label | use |\n|---|---|\n| `good` | glad |\n", encoding="utf-8")
    with pytest.raises(takehome.TakeHomeError, match="Topic labels"):
        takehome.policy_labels(policy)


def test_the_run_history_grows_and_the_monitor_takes_over_after_enough_runs(tmp_path):
    results = pd.DataFrame({"sku": ["a", "b", "c", "d"], "status": ["ok", "ok", "failed", "repaired"],
                            "error_kind": [None, None, "schema", None], "cost_usd": [0.01] * 4,
                            "text": ["one two", "three", None, "four five six"],
                            "check_fields_used": pd.array([True, False, pd.NA, True], dtype="boolean"),
                            "checks": ["passed", "failed", "not checked", "passed"]})
    out = tmp_path / "results.csv"
    for run in range(1, takehome.MIN_RUNS_FOR_MONITOR):
        history = takehome.record_run(results, out)
        assert history["run"].tolist() == list(range(1, run + 1))
    table = takehome.show_history(history)
    assert "window" not in table.columns and table["usable_rate"].tolist() == [0.75] * len(history)
    assert table["fields_used_pass_rate"].round(3).tolist() == [0.667] * len(history)
    history = takehome.record_run(results, out)
    report = takehome.show_history(history)
    assert set(report["window"]) >= {"reference", "current"} and "usable_rate" in report.columns


@pytest.mark.nbgrader
def test_saved_rows_are_reused_only_for_the_same_output_and_the_summary_says_so(tmp_path, scripted, capsys):
    theirs = data.load("products").head(ROWS)
    source = tmp_path / "theirs.csv"
    theirs.to_csv(source, index=False)
    notebook = TAKE_HOME / "product-descriptions.ipynb"
    first = tmp_path / "first.csv"
    code = _run(notebook, "--input", source, "--output", first, "--param", "max_rows=null",
                "--param", "token_budget=1500")
    printed = capsys.readouterr().out
    assert code == ExitCode.ROWS_NOT_USABLE
    done = int((pd.read_csv(first)["status"] == "ok").sum())
    assert 0 < done < ROWS and f"Outcome: {done} of {ROWS} rows usable" in printed
    assert first.with_name("first.checkpoint.jsonl").is_file()  # kept beside this output: rows are left

    second = tmp_path / "second.csv"  # another output starts afresh
    assert _run(notebook, "--input", source, "--output", second, "--param", "max_rows=null") == ExitCode.OK
    printed = capsys.readouterr().out
    assert "Reused:" not in printed and pd.read_csv(second)["source"].ne("checkpoint").all()

    assert _run(notebook, "--input", source, "--output", first, "--param", "max_rows=null") == ExitCode.OK
    printed = capsys.readouterr().out
    assert f"Reused: {done} row(s) from this output's earlier run (first*.checkpoint.jsonl next to it)" in printed
    assert int((pd.read_csv(first)["source"] == "checkpoint").sum()) == done
    assert f"Outcome: {ROWS} of {ROWS} rows usable" in printed


@pytest.mark.nbgrader
def test_product_descriptions_checks_the_description_it_generates(tmp_path, scripted, monkeypatch, capsys):
    """Issue 26: the take-home checked the headline, so an invented claim in the description passed."""
    import json

    from marketlab.llm.testing import REPLY_FIELDS_VARIABLE

    monkeypatch.setenv(REPLY_FIELDS_VARIABLE, json.dumps(
        {"headline": "A fine product", "description": "Certified organic and BPA-free, it is also fully waterproof."}))
    source = tmp_path / "products.csv"
    data.load("products").head(ROWS).to_csv(source, index=False)
    out = tmp_path / "results.csv"
    code = _run(TAKE_HOME / "product-descriptions.ipynb", "--input", source, "--output", out,
                "--param", "max_rows=null")
    results = pd.read_csv(out)
    assert "check_faithfulness" in results.columns, results.columns.tolist()
    assert not results["check_faithfulness"].astype(bool).any(), results[["check_faithfulness", "check_reason"]]
    assert results["check_reason"].str.contains("BPA-free|organic", case=False).all()
    assert "faithfulness 0%" in capsys.readouterr().out  # the console summary says so too
    assert code == ExitCode.OK  # no acceptance criteria declared in this notebook: rows are usable, that is all
