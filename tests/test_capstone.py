"""The capstone through its checks, its graders and real nbgrader: the packaged folder is run with
`marketlab run` on a table it has never seen, under faults, and what it spends is counted on our side.

The solution's folder passes on the course rows and on the holdout of another company; the
starting version fails every check; folders that lose a row, have no budget, ignore a budget,
compute no acceptance or plant a link instead of a brief fail with a reason that says so.
"""

from __future__ import annotations

import linecache
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from marketlab import capstone
from marketlab.checks import CheckFailed
from marketlab.checks import capstone as checks
from tests.support.lab_notebook import assert_validates, graders, meta, notebook, stored_kinds
from tests.support.learner_workspace import LearnerWorkspace
from tests.support.local_submission import LocalSubmission

LAB = Path(__file__).resolve().parent.parent / "labs" / "capstone"
ANSWERS = ["task", "brief", "schema", "messages", "settings", "evaluate", "alerts", "readme"]
TESTS = ["check-brief", "check-package", "check-monitoring", "check-readme"]


def test_capstone_is_stored_clean_with_correct_metadata() -> None:
    kinds = stored_kinds(LAB)
    assert kinds["test"] == TESTS
    assert kinds["answer"] == ANSWERS
    assert kinds["manual"] == ["brief-reasons", "write-up"]
    rubric = next(c.source for c in notebook(LAB).cells if c.id == "rubric")
    assert "brief" in rubric.lower() and "write-up" in rubric.lower() and "|" in rubric, "the rubric is in the notebook"


def _run_cells(source_cells: dict[str, str], folder: Path, *, starting: bool = False) -> dict[str, Any]:
    """Run the notebook's code cells in order in one namespace, in `folder`, with the scripted model."""
    namespace: dict[str, Any] = {}
    before = Path.cwd()
    os.chdir(folder)
    environment = pytest.MonkeyPatch()
    environment.setenv("MARKETLAB_BACKEND", "scripted")  # the cells run as written: the environment picks the model
    try:
        for grade_id, source in source_cells.items():
            source = source.split("### BEGIN HIDDEN TESTS")[0]
            if grade_id == "run-it":
                continue
            name = f"<capstone-{grade_id}>"
            linecache.cache[name] = (len(source), None, source.splitlines(True), name)  # as IPython keeps cells
            if starting and grade_id in TESTS:
                with pytest.raises((CheckFailed, NameError, NotImplementedError)):
                    exec(compile(source, name, "exec"), namespace)
                continue
            try:
                exec(compile(source, name, "exec"), namespace)
            except Exception:
                if not starting:
                    raise
    finally:
        environment.undo()
        os.chdir(before)
    return namespace


def _cells(*, student: bool = False) -> dict[str, str]:
    nb = notebook(LAB)
    if student:
        from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

        nb, _ = ClearSolutions().preprocess(nb, {})
        nb, _ = ClearHiddenTests().preprocess(nb, {})
    return {meta(c)["grade_id"]: c.source for c in nb.cells if c.cell_type == "code"}


@pytest.fixture(scope="module")
def solved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The solution run top to bottom (its visible checks raise on a failure); its folder and namespace."""
    folder = tmp_path_factory.mktemp("capstone")
    namespace = _run_cells(_cells(), folder)
    return folder, namespace


def test_solution_passes_every_visible_check_and_packages_five_files(solved) -> None:
    folder, namespace = solved
    package = folder / checks.PACKAGE_DIR
    assert sorted(p.name for p in package.iterdir() if p.is_file()) == sorted(checks.FILES)
    readme = (package / "README.md").read_text()
    assert checks.GENERATED in readme and "marketlab run my-workflow" in readme
    planted = namespace["verdicts"].iloc[-1]
    assert not planted["faithfulness"] and "waterproof" in planted["reason"], "the planted claim is caught"


def test_starting_version_fails_every_check(tmp_path: Path) -> None:
    _run_cells(_cells(student=True), tmp_path, starting=True)


def test_graders_pass_the_solution_on_the_holdout_table(solved) -> None:
    folder, namespace = solved
    module = graders(LAB)
    submission = LocalSubmission({"TASK": namespace["TASK"], "brief": namespace["brief"]}, folder=folder)
    for grade_id in TESTS:
        result = module.GRADERS[grade_id](submission)
        assert result.passed, result.text()
    assert module.holdout_rows("products")["sku"].str.startswith("HX-").all(), "another company's products"


def test_a_task_that_is_not_allowed_is_refused_by_name(solved) -> None:
    folder, _ = solved
    result = graders(LAB).grade_package(LocalSubmission({"TASK": "../../etc/shadow"}, folder=folder))
    assert not result.passed and "TASK must be one of" in result.problems[0]


# -- folders that break the rules, each on its own -------------------------------------------------

def _variant(solved: tuple[Path, dict[str, Any]], tmp_path: Path, **replace: str) -> Path:
    """A copy of the solution's package with some files replaced (text) or removed (None)."""
    source = solved[0] / checks.PACKAGE_DIR
    target = tmp_path / checks.PACKAGE_DIR
    target.mkdir()
    for path in source.iterdir():
        if path.is_file():
            (target / path.name).write_bytes(path.read_bytes())
    for name, text in replace.items():
        (target / name.replace("_", ".")).write_text(textwrap.dedent(text), encoding="utf-8")
    return target


def _package_result(folder: Path) -> Any:
    return checks.check_package(folder, checks.unseen_rows("products"), "sku", strict=False, quiet=True)


def test_a_workflow_that_drops_failed_rows_fails_with_rows_lost(solved, tmp_path: Path) -> None:
    source = (solved[0] / checks.PACKAGE_DIR / "workflow.py").read_text()
    folder = _variant(solved, tmp_path, workflow_py=source + textwrap.dedent('''

        _whole_run = run


        def run(df, client, model=None, **overrides):
            out = _whole_run(df, client, model, **overrides)
            return out[out["status"].isin(["ok", "repaired"])]
        '''))
    result = _package_result(folder)
    assert not result.passed and any("rows lost" in p for p in result.problems), result.problems


def test_a_workflow_that_reports_rows_usable_without_the_model_fails(solved, tmp_path: Path) -> None:
    """Issue 21: what the run reports comes from the learner's process; the checker holds it against what its
    own endpoint served. This run sends one row and says every row came back 'ok'."""
    source = (solved[0] / checks.PACKAGE_DIR / "workflow.py").read_text()
    folder = _variant(solved, tmp_path, workflow_py=source + textwrap.dedent("""

        _whole_run = run


        def run(df, client, model=None, **overrides):
            one = _whole_run(df.head(1), client, model, **overrides)  # one row sent, every row "answered"
            forged = df.copy()
            for column in one.columns:
                if column not in forged.columns:
                    forged[column] = one[column].iloc[0]
            forged["status"], forged["error"] = "ok", ""
            return forged
        """))
    result = _package_result(folder)
    assert not result.passed and any("usable replies" in p for p in result.problems), result.problems


def test_a_workflow_without_a_budget_fails(solved, tmp_path: Path) -> None:
    source = (solved[0] / checks.PACKAGE_DIR / "workflow.py").read_text()
    assert "tokens=100000" in source.replace("_", "")
    folder = _variant(solved, tmp_path, workflow_py=source + "\nSETTINGS = SETTINGS.model_copy(update={'budget': "
                                                             "SETTINGS.budget.model_copy(update={'tokens': None})})\n")
    result = _package_result(folder)
    assert not result.passed and any("no budget" in p for p in result.problems), result.problems


def test_a_workflow_that_ignores_the_budget_it_is_given_fails(solved, tmp_path: Path) -> None:
    source = (solved[0] / checks.PACKAGE_DIR / "workflow.py").read_text()
    folder = _variant(solved, tmp_path, workflow_py=source + textwrap.dedent('''

        _whole_run = run


        def run(df, client, model=None, **overrides):
            overrides.pop("token_budget", None)  # "the budget is for other people"
            return _whole_run(df, client, model, **overrides)
        '''))
    result = _package_result(folder)
    assert not result.passed and any("over the budget" in p for p in result.problems), result.problems


def test_an_evaluator_without_acceptance_criteria_fails(solved, tmp_path: Path) -> None:
    source = (solved[0] / checks.PACKAGE_DIR / "evaluate.py").read_text()
    folder = _variant(solved, tmp_path, evaluate_py=source + "\nACCEPTANCE = None\n")
    result = _package_result(folder)
    assert not result.passed and any("no acceptance criteria" in p for p in result.problems), result.problems


def test_a_brief_that_is_a_link_to_a_secret_is_not_followed(solved, tmp_path: Path) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text((solved[0] / checks.PACKAGE_DIR / "brief.yaml").read_text())
    folder = _variant(solved, tmp_path)
    (folder / "brief.yaml").unlink()
    (folder / "brief.yaml").symlink_to(secret)
    result = checks.check_brief(folder, strict=False, quiet=True)
    assert not result.passed and "has no brief.yaml" in result.problems[0]


def test_a_readme_that_is_only_the_generated_part_fails(solved, tmp_path: Path) -> None:
    generated = (solved[0] / checks.PACKAGE_DIR / "README.md").read_text().split(checks.GENERATED, 1)[1]
    folder = _variant(solved, tmp_path, README_md="# Ours\n\n" + checks.GENERATED + generated)
    result = checks.check_readme(folder, strict=False, quiet=True)
    assert not result.passed and any("words" in p for p in result.problems)


def test_a_reviews_workflow_runs_on_the_holdout_reviews(tmp_path: Path) -> None:
    """The grader is not only for product copy: a review-insight package, another task, passes too."""
    from pydantic import BaseModel, Field

    from marketlab import reference
    from marketlab.brief import Brief
    from marketlab.evaluate import Acceptance, banned_words, make_check
    from marketlab.monitor import AlertRule, Trigger
    from marketlab.workflow import RunSettings

    class Insight(BaseModel):
        sentiment: str = Field(description="positive, neutral or negative")
        summary: str = Field(description="what the customer says, in one sentence", max_length=200)

    def build_messages(brief, record):
        return [{"role": "system", "content": "Summarise the customer review in one sentence."},
                {"role": "user", "content": f"Rating {record['rating']}: {record['text']}"}]

    def short(text, facts, channel):
        return None if len(str(text).split()) <= 40 else "longer than 40 words"

    brief = Brief.from_yaml(reference.brief_path().read_text())
    folder = capstone.package(
        task="reviews", brief=brief, build_messages=build_messages, schema=Insight,
        settings=RunSettings.build(max_tokens=120, token_budget=50_000), checks=[banned_words(),
                                                                                make_check("short", short)],
        acceptance=Acceptance(min_pass_rate=0.5), text="summary",
        alerts=[AlertRule("Pass rate down", "pass_rate", Trigger.beyond(sigmas=2, weeks=2, out_of=3),
                          owner="Insights lead", action="review")],
        readme="Review insights for the support team, one line per review, owned by the Insights lead. " * 3,
        here=tmp_path)
    result = graders(LAB).grade_package(LocalSubmission({"TASK": "reviews"}, folder=tmp_path))
    assert result.passed, result.text()
    assert folder.name == checks.PACKAGE_DIR


@pytest.mark.slow
@pytest.mark.nbgrader
def test_capstone_validates_through_nbgrader(tmp_path: Path) -> None:
    assert_validates(LAB, tmp_path, 9, ["brief-reasons", "write-up"])


def test_an_alert_on_a_rate_the_results_never_have_is_refused_at_packaging(solved, tmp_path: Path) -> None:
    from marketlab.artifacts import ArtifactError
    from marketlab.monitor import AlertRule, Trigger

    _, ns = solved
    parts = {name: ns[name] for name in ("brief", "build_messages", "RULES", "SETTINGS", "CHECKS", "ACCEPTANCE",
                                         "TEXT", "README", "TASK")}
    clicks = AlertRule("Clicks falling", "click_rate", Trigger.run(weeks=8), owner="Web lead", action="review")
    with pytest.raises(ArtifactError, match="could never fire"):
        capstone.package(task=parts["TASK"], brief=parts["brief"], build_messages=parts["build_messages"],
                         schema=ns["Output"], rules=parts["RULES"], settings=parts["SETTINGS"], checks=parts["CHECKS"],
                         acceptance=parts["ACCEPTANCE"], text=parts["TEXT"], alerts=[clicks], readme=parts["README"],
                         here=tmp_path)
    assert not (tmp_path / checks.PACKAGE_DIR).exists(), "nothing half-written"


def test_a_file_that_cannot_run_alone_leaves_the_last_good_package_untouched(solved) -> None:
    from marketlab.artifacts import ArtifactError

    folder, ns = solved
    before = {p.name: p.read_bytes() for p in (folder / checks.PACKAGE_DIR).iterdir() if p.is_file()}
    exec(compile("def build_messages(brief, record):\n    return notebook_only(brief, record)\n", "<cell>", "exec"), ns)
    linecache.cache["<cell>"] = (0, None, ["def build_messages(brief, record):\n",
                                           "    return notebook_only(brief, record)\n"], "<cell>")
    broken = ns["build_messages"]
    with pytest.raises(ArtifactError):
        capstone.package(task=ns["TASK"], brief=ns["brief"], build_messages=broken, schema=ns["Output"],
                         rules=ns["RULES"], settings=ns["SETTINGS"], checks=ns["CHECKS"], acceptance=ns["ACCEPTANCE"],
                         text=ns["TEXT"], alerts=ns["ALERTS"], readme=ns["README"] + "\nNOTEBOOK_ONLY_MARKER",
                         here=folder)
    after = {p.name: p.read_bytes() for p in (folder / checks.PACKAGE_DIR).iterdir() if p.is_file()}
    assert after == before


def test_a_budget_too_small_for_one_reply_is_kept_not_failed(solved, tmp_path: Path) -> None:
    """max_tokens is reserved in full before a call: with 2,000 of them, half the tokens the rows need buys
    no call at all. Every row then says skipped_budget, and that is the budget kept."""
    source = (solved[0] / checks.PACKAGE_DIR / "workflow.py").read_text()
    folder = _variant(solved, tmp_path,
                      workflow_py=source + "\nSETTINGS = SETTINGS.model_copy(update={'max_tokens': 2000})\n")
    result = _package_result(folder)
    assert result.passed, result.text()


@pytest.mark.nbgrader
@pytest.mark.slow
def test_the_locked_cells_run_in_a_learners_workspace(learner_workspace: LearnerWorkspace) -> None:
    """The student copy `marketlab lab` makes, answered with the solution and run in a real kernel from its
    own folder: every locked cell runs, the dry run passes a brief that states its limits, and step 9's
    command writes into my-results/ (which nobody made for the learner) with both rows from the cache.

    The run is made once per session (test_lab_tips.py runs the capstone's tips beside it); what was there
    before it and what it saved are recorded when it runs."""
    import io

    import pandas as pd

    run = learner_workspace.solution_run(LAB.name)  # raises on a failing cell
    assert not run.results_folder_before
    dry = run.shown("dry-run")
    assert "failed" not in dry and "are needed" not in dry, dry
    assert "Exit status: 2" not in run.shown("run-it") and "does not exist" not in run.shown("run-it"), \
        run.shown("run-it")
    assert run.results_csv is not None, "step 9 wrote my-results/results.csv"
    results = pd.read_csv(io.StringIO(run.results_csv))
    assert list(results["source"]) == ["cache", "cache"], results[["status", "source"]]
    assert results["calls"].sum() == 0, "the cache answered: no model call"


README_BODY = """
# Spotlight emails for Ridgeline Outfitters

This workflow writes the product spotlight for the weekly email from the product facts only. It is for
the email team, who send one spotlight a week to about forty thousand subscribers who bought from us
in the last year. The Marketing operations lead owns the prompt and the brief, and answers for what
the workflow writes. Nothing it writes is sent without a person reading it first, because the checks
cannot judge tone or a claim that is true but misleading.

When "Checks failing more" fires, the Marketing operations lead rewrites the prompt and runs the
failing products again. When "Fewer usable replies" fires,
the lead pauses the workflow and asks the model provider what changed.

{review}
"""


def _readme_folder(solved: tuple[Path, dict[str, Any]], tmp_path: Path, review: str) -> Path:
    generated = (solved[0] / checks.PACKAGE_DIR / "README.md").read_text().split(checks.GENERATED, 1)[1]
    return _variant(solved, tmp_path, README_md=README_BODY.format(review=review) + checks.GENERATED + generated)


@pytest.mark.parametrize("review", [
    "The email editor reads every spotlight before the Thursday send.",  # the sentence issue 26 saw refused
    "The email editor reviews every spotlight before the Thursday send.",
    "Each Monday the Marketplace manager looks over a sample of ten spotlights.",
    "Before anything goes out, the brand team proofreads it.",
    "The CRM specialist spot-checks five spotlights a week.",
])
def test_the_readme_check_reads_who_reviews_and_when_in_other_words(solved, tmp_path: Path, review: str) -> None:
    result = checks.check_readme(_readme_folder(solved, tmp_path, review), strict=False, quiet=True)
    assert result.passed, result.problems


@pytest.mark.parametrize(("review", "missing"), [
    ("Someone should review it.", "who does it (a role, such as your brief's reviewer) or when"),
    ("Spotlights are reviewed regularly.", "who does it"),
    ("The team reviews the output.", "does not say when"),
    ("It is quick and saves the team hours.", "no sentence says who reads, reviews or checks the output"),
])
def test_the_readme_check_still_refuses_a_vague_review(solved, tmp_path: Path, review: str, missing: str) -> None:
    result = checks.check_readme(_readme_folder(solved, tmp_path, review), strict=False, quiet=True)
    assert not result.passed
    [problem] = [p for p in result.problems if "reviews, and when" in p]
    assert problem.count("\n") == 0, problem
    assert missing in checks.review_problem(review), "the message says what the sentence lacks"


def test_the_readme_check_needs_what_to_do_when_an_alert_fires(solved, tmp_path: Path) -> None:
    no_alerts = README_BODY.split('When "Checks')[0] + "If results look odd, the lead asks the provider.\n\n{review}\n"
    text = no_alerts.format(review="The email editor reads every spotlight before the Thursday send.")
    generated = (solved[0] / checks.PACKAGE_DIR / "README.md").read_text().split(checks.GENERATED, 1)[1]
    folder = _variant(solved, tmp_path, README_md=text + checks.GENERATED + generated)
    result = checks.check_readme(folder, strict=False, quiet=True)
    assert [p for p in result.problems if "alert fires" in p], result.problems
