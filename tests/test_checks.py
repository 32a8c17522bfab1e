"""Visible checks and hidden graders: they pass good work and fail broken or hard-coded work with a hint."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from marketlab import artifacts, data, reference
from marketlab.brief import Brief, is_missing
from marketlab.checks import CheckFailed, grader_path, lab00, lab01
from tests.support.local_submission import LocalSubmission
from marketlab.llm import estimate_cost

VAGUE = "objective: Write great product descriptions that make people want to buy."


@pytest.fixture(scope="module")
def graders() -> Any:
    """The instructor's graders (graders/ at the repository root), loaded as grading loads them."""
    import importlib.util
    import types

    package = types.SimpleNamespace()
    for name in ("lab00", "lab01"):
        spec = importlib.util.spec_from_file_location(f"test_graders_{name}", grader_path() / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        setattr(package, name, module)
    return package


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    """The three lab products the notebook uses."""
    products = data.load("products")
    return products.groupby("category", sort=False).head(1).head(3).reset_index(drop=True)


@pytest.fixture
def shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private shared-artifacts folder."""
    folder = tmp_path / "shared"
    monkeypatch.setenv("MARKETLAB_ARTIFACTS", str(folder))
    return folder


# ---- report ----------------------------------------------------------------------------------


def test_failed_check_prints_hint_and_raises_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(CheckFailed) as err:
        lab00.check_batch_cost(lambda *a: 0.0)
    out = capsys.readouterr().out
    assert out.startswith("❌ Not yet: batch_cost") and "Hint:" in out
    rendered = err.value._render_traceback_()
    assert rendered == ["This check did not pass yet: see the lines above."]
    assert "Hint:" in str(err.value)  # graders' logs get the whole message


def test_quiet_failed_check_renders_the_whole_message() -> None:
    with pytest.raises(CheckFailed) as err:
        lab00.check_batch_cost(lambda *a: 0.0, quiet=True)
    rendered = err.value._render_traceback_()
    assert "did not pass" in rendered[0] and any("Hint:" in line for line in rendered)


def test_passing_check_prints_a_tick(capsys: pytest.CaptureFixture[str]) -> None:
    result = lab00.check_batch_cost(lambda r, p, c, m="gpt-4o-mini": r * (estimate_cost(m, p, c) or 0))
    assert result.passed and capsys.readouterr().out.startswith("✅")


# ---- lab 0: batch_cost -----------------------------------------------------------------------


def solution_batch_cost(rows: int, prompt_tokens: int, completion_tokens: int, model: str = "gpt-4o-mini") -> float:
    return rows * estimate_cost(model, prompt_tokens, completion_tokens)


def test_batch_cost_solution_passes_visible_and_hidden(graders: Any) -> None:
    assert lab00.check_batch_cost(solution_batch_cost, quiet=True).passed
    assert graders.lab00.grade_batch_cost(LocalSubmission({"batch_cost": solution_batch_cost})).passed


def test_batch_cost_forgetting_rows_gets_the_multiply_hint() -> None:
    result = lab00.check_batch_cost(lambda r, p, c, m="gpt-4o-mini": estimate_cost(m, p, c), strict=False, quiet=True)
    assert not result.passed and "Multiply" in result.hint


def test_batch_cost_hard_coded_answers_pass_visible_but_fail_hidden(graders: Any) -> None:
    answers = {(r, p, c, m): solution_batch_cost(r, p, c, m) for r, p, c, m in lab00.COST_CASES}

    def memorised(rows: int, prompt_tokens: int, completion_tokens: int, model: str = "gpt-4o-mini") -> float:
        return answers.get((rows, prompt_tokens, completion_tokens, model), 1.0)

    assert lab00.check_batch_cost(memorised, quiet=True).passed
    hidden = graders.lab00.grade_batch_cost(LocalSubmission({"batch_cost": memorised}))
    assert not hidden.passed and "expected" in hidden.problems[0]


def test_batch_cost_crash_and_non_number_are_reported() -> None:
    def crashes(*args: Any) -> float:
        raise ZeroDivisionError("oops")

    result = lab00.check_batch_cost(crashes, strict=False, quiet=True)
    assert "ZeroDivisionError: 'oops'" in result.problems[0]  # the learner's text, quoted
    result = lab00.check_batch_cost(lambda *a: "about a dollar", strict=False, quiet=True)
    assert "not a number" in result.problems[0]


# ---- lab 0: ask ------------------------------------------------------------------------------


def make_ask(**settings: Any) -> Any:
    """An ask() like the learner writes, with the given request settings."""

    def ask(prompt: str, seed: int, client: Any = None) -> str:
        call = {"temperature": 1.0, "seed": seed, "max_tokens": 40}
        call.update({k: v(seed) if callable(v) else v for k, v in settings.items()})
        call = {k: v for k, v in call.items() if v is not None}
        response = client.chat.completions.create(
            model="any", messages=[{"role": "user", "content": prompt}], **call)
        return response.choices[0].message.content

    return ask


def test_ask_solution_passes_visible_and_hidden(graders: Any) -> None:
    assert lab00.check_ask(make_ask(), quiet=True).passed
    assert graders.lab00.grade_ask(LocalSubmission({"ask": make_ask()})).passed


@pytest.mark.parametrize("settings, hint", [
    ({"seed": None}, "seed=seed"),
    ({"seed": 42}, "seed=seed"),
    ({"temperature": 0}, "temperature=1.0"),
    ({"max_tokens": None}, "max_tokens=40"),
    ({"max_tokens": 500}, "max_tokens=40"),
])
def test_ask_wrong_settings_fail_with_the_matching_hint(settings: dict[str, Any], hint: str) -> None:
    result = lab00.check_ask(make_ask(**settings), strict=False, quiet=True)
    assert not result.passed and hint in result.hint


def test_ask_returning_the_response_object_fails() -> None:
    def ask(prompt: str, seed: int, client: Any = None) -> Any:
        return client.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt}],
                                              temperature=1.0, seed=seed, max_tokens=40)

    result = lab00.check_ask(ask, strict=False, quiet=True)
    assert not result.passed and "message.content" in result.hint


def test_ask_ignoring_the_prompt_and_calling_twice_fail() -> None:
    fixed = lambda prompt, seed, client=None: make_ask()("Write a tagline.", seed, client)  # noqa: E731
    assert "was not sent" in " ".join(lab00.check_ask(fixed, strict=False, quiet=True).problems)

    def twice(prompt: str, seed: int, client: Any = None) -> str:
        make_ask()(prompt, seed, client)
        return make_ask()(prompt, seed, client)

    assert "2 calls" in " ".join(lab00.check_ask(twice, strict=False, quiet=True).problems)


def test_ask_without_client_parameter_gets_signature_hint() -> None:
    result = lab00.check_ask(lambda prompt, seed: "text", strict=False, quiet=True)
    assert not result.passed and "def ask(prompt, seed, client=client)" in result.hint


# ---- lab 1: brief checks ---------------------------------------------------------------------


def test_sections_fail_on_the_exercise_starting_text() -> None:
    starting = {
        "objective": dict(objective="statement: Write great product descriptions.\ntarget: Make them better.",
                          audience="who: everyone\nneeds: []"),
        "inputs": dict(inputs="- name: product catalogue\n  source:\n  owner:\n  freshness:"),
        "output": dict(output="format: a nice description\nfields: []\nmax_words:",
                       constraints="brand_voice: fun\nbanned_claims: []", acceptance="- customers like it"),
        "operations": dict(budget="volume: lots\nlatency: fast\ncost: cheap",
                           monitoring="metrics:\n  - number of page views\nreview_cadence: when we have time",
                           ownership="reviewer: the team\nprompt_owner: the team\ntrigger: if it gets worse",
                           failure_handling="we will fix it"),
    }
    for section, texts in starting.items():
        result = lab01.check_section(Brief.from_sections(**texts), section, strict=False, quiet=True)
        assert not result.passed, section
        lint_problems = [p for p in result.problems if not p.startswith("output: ")]
        failing = {p.split(":")[0] for p in lint_problems}
        # the one-line statement already says what is produced; everything else must fail
        assert failing == set(lab01.SECTION_RULES[section]) - {"objective-stated"}, section
        assert all("Fix:" in p for p in lint_problems)
        if section == "output":  # and the word limits the workflow's rules need are asked for
            assert any("min_words and max_words is empty" in p for p in result.problems)


def test_sections_and_brief_pass_on_the_reference() -> None:
    brief = reference.load_brief()
    for section in lab01.SECTION_RULES:
        assert lab01.check_section(brief, section, quiet=True).passed
    assert lab01.check_brief(brief, quiet=True).passed


def test_brief_check_fails_on_vague_brief_and_broken_yaml(graders: Any) -> None:
    hidden = graders.lab01.grade_brief(LocalSubmission({"brief": Brief.from_yaml(VAGUE)}))
    assert not hidden.passed and any("objective-measurable" in p for p in hidden.problems)
    result = lab01.check_brief("objective: [unclosed", strict=False, quiet=True)
    assert not result.passed and "YAML" in result.problems[0]


# ---- lab 1: build_messages -------------------------------------------------------------------


def build_messages(brief: Brief, record: Any) -> list[dict[str, str]]:
    messages = brief.to_messages(record)
    messages[-1]["content"] += "\nStart with the product name and mention the first key spec early."
    return messages


def test_build_messages_solution_passes_visible_and_hidden(sample: pd.DataFrame, graders: Any) -> None:
    brief = reference.load_brief()
    assert lab01.check_build_messages(build_messages, sample, brief, quiet=True).passed
    assert graders.lab01.grade_build_messages(LocalSubmission({"build_messages": build_messages,
                                                                "brief": brief})).passed


def test_holdout_catches_a_lab_product_hard_coded_as_example(sample: pd.DataFrame, graders: Any) -> None:
    unseen = data.load("products").iloc[40]  # a lab product, but not one of the sample three
    assert unseen["name"] not in set(sample["name"])

    def with_example(brief: Brief, record: Any) -> list[dict[str, str]]:
        messages = brief.to_messages(record)
        messages[0]["content"] += f"\nExample of great copy: the {unseen['name']} is our favourite."
        return messages

    assert lab01.check_build_messages(with_example, sample, reference.load_brief(), quiet=True).passed
    hidden = graders.lab01.grade_build_messages(LocalSubmission({"build_messages": with_example,
                                                                  "brief": reference.load_brief()}))
    assert not hidden.passed
    assert any(f"mentions other products: {unseen['name']}" in p for p in hidden.problems)


def test_hard_coded_product_fails_visible_check(sample: pd.DataFrame) -> None:
    first = sample.iloc[0]

    def hard_coded(brief: Brief, record: Any) -> list[dict[str, str]]:
        return [{"role": "system", "content": brief.system_prompt()},
                {"role": "user", "content": f"Write about the {first['name']}. {first['key_specs']}"}]

    result = lab01.check_build_messages(hard_coded, sample, reference.load_brief(), strict=False, quiet=True)
    problems = " ".join(result.problems)
    assert "facts missing" in problems and "mentions other products" in problems
    assert "identical messages" in problems and "take them from record" in result.hint


def test_function_that_crashes_on_empty_fields_fails(sample: pd.DataFrame) -> None:
    def naive(brief: Brief, record: Any) -> list[dict[str, str]]:
        certs = ", ".join(record["certifications"].split(";"))  # breaks on NaN / None
        return brief.to_messages(record) + [] if certs is not None else []

    result = lab01.check_build_messages(naive, sample, reference.load_brief(), strict=False, quiet=True)
    assert not result.passed and "optional fields left empty" in result.problems[0]
    assert "is_missing" in result.hint


def test_function_printing_nan_fails(sample: pd.DataFrame) -> None:
    def prints_nan(brief: Brief, record: Any) -> list[dict[str, str]]:
        messages = brief.to_messages(record)
        messages[-1]["content"] += f"\nCertified: {record['certifications']}"
        return messages

    result = lab01.check_build_messages(prints_nan, sample, reference.load_brief(), strict=False, quiet=True)
    assert not result.passed and "show 'NaN'" in result.problems[0]


def test_function_ignoring_the_brief_fails(sample: pd.DataFrame) -> None:
    fixed_brief = reference.load_brief()
    ignores = lambda brief, record: fixed_brief.to_messages(record)  # noqa: E731
    result = lab01.check_build_messages(ignores, sample, reference.load_brief(), strict=False, quiet=True)
    assert not result.passed and "changing the brief" in result.problems[0]


def test_function_dropping_limits_or_facts_fails(sample: pd.DataFrame) -> None:
    def no_limits(brief: Brief, record: Any) -> list[dict[str, str]]:
        return brief.to_messages({k: v for k, v in dict(record).items() if k not in ("not_true", "price_usd")})

    result = lab01.check_build_messages(no_limits, sample, reference.load_brief(), strict=False, quiet=True)
    problems = " ".join(result.problems)
    assert "price_usd" in problems and "(from not_true) is missing" in problems


def test_limits_must_be_marked_as_not_to_claim(sample: pd.DataFrame) -> None:
    def limits_as_features(brief: Brief, record: Any) -> list[dict[str, str]]:
        from marketlab.brief import is_missing  # inside: a saved function has only its own imports

        row = {k: v for k, v in dict(record).items() if k != "not_true"}
        messages = brief.to_messages(row)
        extra = "" if is_missing(record["not_true"]) else str(record["not_true"]).replace(";", ",")
        messages[-1]["content"] += f"\nHighlights: {extra}"
        return messages

    result = lab01.check_build_messages(limits_as_features, sample, reference.load_brief(), strict=False, quiet=True)
    assert "not introduced as something not to claim" in " ".join(result.problems)


def test_wrong_shape_is_reported(sample: pd.DataFrame) -> None:
    result = lab01.check_build_messages(lambda b, r: "hello", sample, reference.load_brief(), strict=False,
                                        quiet=True)
    assert "not a list of messages" in result.problems[0] and "role" in result.hint


# ---- artifacts -------------------------------------------------------------------------------


def test_save_and_load_artifacts(tmp_path: Path, shared: Path, capsys: pytest.CaptureFixture[str]) -> None:
    brief = reference.load_brief()
    local, copy = artifacts.save_brief(brief, here=tmp_path)
    assert local == tmp_path / "brief.yaml" and copy == shared / "brief.yaml"
    assert Brief.load(copy) == brief
    artifacts.save_function(build_messages, "lab01_messages", here=tmp_path)
    assert (shared / "lab01_messages.py").is_file()
    # Lab 2, opened in another folder, finds both through the shared folder
    elsewhere = tmp_path / "lab02"
    elsewhere.mkdir()
    assert artifacts.load_brief(here=elsewhere) == brief
    fn = artifacts.load_build_messages(here=elsewhere)
    assert fn is not reference.build_messages
    assert fn(brief, {"name": "Test Lantern"})[-1]["content"].endswith("first key spec early.")


def test_missing_artifacts_fall_back_to_reference(tmp_path: Path, shared: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert artifacts.load_brief(here=tmp_path) == reference.load_brief()
    assert artifacts.load_build_messages(here=tmp_path) is reference.build_messages
    assert "reference" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError):
        artifacts.load_function("lab01_messages", "build_messages", here=tmp_path)


def _function_from_file(folder: Path, source: str, name: str, namespace: dict[str, Any]) -> Any:
    """Define a function from source in a real file, as a notebook cell does, so its code can be read back."""
    path = folder / f"cell_{name}.py"
    path.write_text(source)
    exec(compile(source, str(path), "exec"), namespace)
    return namespace[name]


def test_saved_function_that_needs_the_notebook_fails_the_artifact_check(tmp_path: Path, shared: Path) -> None:
    source = "def build_messages(brief, record):\n    return brief.to_messages(record) + EXTRA_MESSAGES\n"
    fn = _function_from_file(tmp_path, source, "build_messages", {"EXTRA_MESSAGES": []})
    assert fn(reference.load_brief(), {"name": "Lantern"})  # works inside the "notebook"
    artifacts.save_brief(reference.load_brief(), here=tmp_path)
    artifacts.save_function(fn, "lab01_messages", here=tmp_path)  # imports: the name is used only on call
    result = lab01.check_saved_artifacts(data.load("products").head(2), here=tmp_path, strict=False, quiet=True)
    assert not result.passed and "NameError" in " ".join(result.problems)


def test_save_function_refuses_a_module_that_cannot_import(tmp_path: Path, shared: Path) -> None:
    source = "@notebook_decorator\ndef build_messages(brief, record):\n    return []\n"
    fn = _function_from_file(tmp_path, source, "build_messages", {"notebook_decorator": lambda f: f})
    with pytest.raises(ValueError, match="cannot be imported on its own: NameError"):
        artifacts.save_function(fn, "lab01_messages", here=tmp_path)


def test_saved_artifacts_check_and_grader(tmp_path: Path, shared: Path, graders: Any) -> None:
    products = data.load("products").head(3)
    missing = lab01.check_saved_artifacts(products, here=tmp_path, strict=False, quiet=True)
    assert not missing.passed and "artifact cell" in missing.hint
    artifacts.save_brief(reference.load_brief(), here=tmp_path)
    artifacts.save_function(build_messages, "lab01_messages", here=tmp_path)
    assert lab01.check_saved_artifacts(products, here=tmp_path, quiet=True).passed
    assert graders.lab01.grade_artifacts(LocalSubmission({}, tmp_path)).passed
    # a saved module found only in the shared folder does not count for this submission
    other = tmp_path / "other-submission"
    other.mkdir()
    shutil.copy(tmp_path / "brief.yaml", other / "brief.yaml")
    assert not lab01.check_saved_artifacts(products, here=other, strict=False, quiet=True).passed


def test_saved_vague_brief_fails_the_artifact_grader(tmp_path: Path, shared: Path, graders: Any) -> None:
    artifacts.save_brief(Brief.from_yaml(VAGUE), here=tmp_path)
    artifacts.save_function(build_messages, "lab01_messages", here=tmp_path)
    hidden = graders.lab01.grade_artifacts(LocalSubmission({}, tmp_path))
    assert not hidden.passed and any("saved brief-rules" in p for p in hidden.problems)


# ---- graders location ------------------------------------------------------------------------


def test_grader_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETLAB_GRADERS", str(tmp_path))
    assert grader_path() == tmp_path
    monkeypatch.setenv("MARKETLAB_GRADERS", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="MARKETLAB_GRADERS"):
        grader_path()


def test_compare_outputs_measures_inventions_and_limits(sample: pd.DataFrame) -> None:
    first = sample.iloc[0]
    limit = str(first["not_true"]).split(";")[0].strip()
    claim = limit.removeprefix("not ").removeprefix("no ")
    before = [f"The {first['name']} has a 9999 mm rating and is fully {claim}.", "x", "y"]
    after = [f"The {first['name']} is {limit}.", "x", "y"]
    table = lab01.compare_outputs(sample, before, after, max_words=120)
    assert table.loc[0, "invented_numbers_before"] == "9999"
    assert table.loc[0, "invented_numbers_after"] == "none"
    assert limit in table.loc[0, "breaks_limits_before"]
    assert table.loc[0, "breaks_limits_after"] == "none"


def test_build_messages_using_a_notebook_variable_fails_at_its_own_exercise(sample: pd.DataFrame) -> None:
    notebook: dict[str, Any] = {"voice": "Warm and plain."}  # a notebook's globals
    exec("def uses_voice(brief, record):\n    messages = brief.to_messages(record)\n"
         "    messages[0]['content'] += voice\n    return messages\n", notebook)

    result = lab01.check_build_messages(notebook["uses_voice"], sample, reference.load_brief(), strict=False, quiet=True)
    assert not result.passed and "'voice'" in result.problems[0] and "'voice'" in result.hint


def test_output_section_needs_both_word_limits() -> None:
    brief = reference.load_brief()
    assert lab01.check_section(brief, "output", quiet=True).passed
    data = brief.model_dump()
    data["output"]["min_words"] = None
    result = lab01.check_section(Brief.model_validate(data), "output", strict=False, quiet=True)
    assert not result.passed and "min_words" in result.problems[-1] and "min_words" in result.hint


def test_vague_yes_no_questions_for_the_vendor_fail_in_any_wording() -> None:
    """Issue 26: five 'Is your AI good with ...?' questions passed, although the lab says they get no answer."""
    from marketlab.checks.lab05 import check_vendor_questions

    vague = "\n".join(f"- Is your AI good with {topic}?" for topic in (
        "our customer data and how fresh it is", "monitoring after launch", "retraining and its owner",
        "our CRM and other systems", "production references we could call"))
    result = check_vendor_questions(vague, strict=False, quiet=True)
    assert not result.passed and any("yes/no question" in p for p in result.problems), result.problems
