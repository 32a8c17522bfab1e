"""The Brief schema, its lint rules and its compiler to chat messages."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from marketlab import data, reference
from marketlab.brief import RULE_IDS, Brief, BriefError, is_measurable, is_rate, lint
from marketlab.checks.lab01 import missing_facts

VAGUE = "objective: Write great product descriptions that make people want to buy."


@pytest.fixture
def good() -> dict[str, Any]:
    """The reference brief as plain data, to break one rule at a time."""
    return reference.load_brief().model_dump()


@pytest.fixture
def product() -> dict[str, Any]:
    """A real row of the lab catalogue, as a dict."""
    return data.load("products").iloc[0].to_dict()


# ---- schema ----------------------------------------------------------------------------------


def test_round_trip_through_yaml_file(tmp_path) -> None:
    brief = reference.load_brief()
    path = brief.save(tmp_path / "nested" / "brief.yaml")
    again = Brief.load(path)
    assert again == brief
    assert again.inputs[0].freshness == "refreshed daily at 02:00"
    assert Brief.from_yaml(brief.to_yaml()) == brief


def test_vague_one_liner_is_a_valid_brief() -> None:
    brief = Brief.from_yaml(VAGUE)
    assert brief.objective.statement.startswith("Write great")
    assert brief.inputs == [] and brief.output.max_words is None
    assert "objective" in brief.to_yaml() and "inputs" not in brief.to_yaml()


def test_single_string_becomes_a_list() -> None:
    brief = Brief.from_yaml("acceptance: 0 banned words\nmonitoring:\n  metrics: approval rate")
    assert brief.acceptance == ["0 banned words"]
    assert brief.monitoring.metrics == ["approval rate"]


def test_invalid_yaml_names_the_line() -> None:
    with pytest.raises(BriefError) as err:
        Brief.from_yaml("objective:\n  statement: one\n   target: [unclosed")
    assert "line 3" in err.value.problem and "space after the colon" in err.value.fix
    assert "How to fix:" in str(err.value)


def test_schema_error_names_the_field_path() -> None:
    with pytest.raises(BriefError) as err:
        Brief.from_yaml("inputs:\n  - name: catalogue\n    sorce: PIM export\n")
    assert "brief.inputs.0.sorce" in str(err.value)
    assert "not part of a brief" in str(err.value)


def test_section_error_names_the_section() -> None:
    with pytest.raises(BriefError) as err:
        Brief.from_sections(output="format: text\nmax_words: many")
    assert "output.max_words" in str(err.value)


def test_yaml_that_is_not_sections_is_refused() -> None:
    with pytest.raises(BriefError, match="named sections"):
        Brief.from_yaml("- just\n- a list\n")


def test_missing_file_is_a_brief_error(tmp_path) -> None:
    with pytest.raises(BriefError, match="no such file"):
        Brief.load(tmp_path / "absent.yaml")


def test_brief_error_is_a_marketlab_error_and_still_a_value_error() -> None:
    from marketlab.errors import MarketlabError

    with pytest.raises(BriefError) as err:
        Brief.load("no-such-brief.yaml")
    assert isinstance(err.value, MarketlabError) and isinstance(err.value, ValueError)
    assert err.value.problem.endswith("no such file.") and err.value.fix == "Check the file name and folder."


def test_lint_and_messages_do_not_import_the_schema_at_run_time() -> None:
    """schema -> lint, messages, one way: the two helpers see Brief only under TYPE_CHECKING."""
    import ast

    import marketlab.brief as package

    folder = Path(package.__file__).parent
    for name in ("lint.py", "messages.py"):
        tree = ast.parse((folder / name).read_text())
        runtime = [node for node in tree.body if isinstance(node, ast.ImportFrom)]
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                runtime += [n for n in ast.walk(node) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in runtime if n.module == "schema" and n.level == 1], f"{name} imports .schema"


def test_brief_error_renders_without_a_stack_trace() -> None:
    with pytest.raises(BriefError) as err:
        Brief.from_yaml("objective: [")
    lines = err.value._render_traceback_()
    assert lines[0].startswith("❌") and not any("Traceback" in line for line in lines)


# ---- lint rules ------------------------------------------------------------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(d: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = d
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value

    return apply


# For each rule: a change to the reference brief that keeps the field present but makes it wrong,
# so a presence-only check would not catch it.
BREAKERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "objective-stated": _set("objective.statement", "Copy."),
    "objective-measurable": _set("objective.target", "make descriptions much better than before"),
    "audience-specific": _set("audience.who", "Everyone"),
    "inputs-have-source": _set("inputs.1.source", "TBD"),
    "inputs-have-owner": _set("inputs.0.owner", "the team"),
    "inputs-have-freshness": _set("inputs.0.freshness", "kept up to date regularly"),
    "output-contract-fields": _set("output.fields", []),
    "brand-voice": _set("constraints.brand_voice", "nice"),
    "banned-claims": _set("constraints.banned_claims", []),
    "acceptance-measurable": _set("acceptance", ["at least 90% approved", "copy feels on brand"]),
    "budget-set": _set("budget.cost", "as cheap as possible"),
    "monitoring-as-rates": _set("monitoring.metrics", ["approval rate", "number of clicks per week"]),
    "review-cadence": _set("monitoring.review_cadence", "when someone has time"),
    "owner-named": _set("ownership.prompt_owner", "marketing"),
    "retrain-trigger": _set("ownership.trigger", "when quality gets worse"),
    "failure-handling": _set("failure_handling", "we will do our best to make it right"),
}


def test_every_rule_has_a_breaker() -> None:
    assert set(BREAKERS) == set(RULE_IDS)


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_rule_fires_on_a_bad_brief_and_only_that_rule(rule_id: str, good: dict[str, Any]) -> None:
    bad = copy.deepcopy(good)
    BREAKERS[rule_id](bad)
    report = lint(Brief.model_validate(bad))
    assert [r.rule.id for r in report.failed] == [rule_id]
    failed = report.result(rule_id)
    assert failed.rule.reason and failed.rule.fix
    assert "fix:" in failed.line() and failed.line().startswith("❌")


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_rule_passes_on_the_reference_brief(rule_id: str) -> None:
    result = lint(reference.load_brief()).result(rule_id)
    assert result.passed, result.detail
    assert result.line().startswith("✅")


def test_levels_from_vague_to_engineering_spec(good: dict[str, Any]) -> None:
    vague = lint(Brief.from_yaml(VAGUE))
    assert vague.level == "marketing spec" and vague.score < 20
    half = {k: good[k] for k in ("objective", "audience", "inputs", "output", "constraints", "acceptance")}
    draft = lint(Brief.from_dict(half))
    assert draft.level == "draft spec" and 50 <= draft.score < 100
    full = lint(reference.load_brief())
    assert full.level == "engineering spec" and full.score == 100 and full.ok
    assert "engineering spec" in str(full)


def test_lint_subset_and_unknown_rule() -> None:
    report = lint(Brief.from_yaml(VAGUE), ["objective-stated", "budget-set"])
    assert [r.rule.id for r in report.results] == ["objective-stated", "budget-set"]
    with pytest.raises(KeyError, match="unknown lint rule"):
        lint(Brief(), ["no-such-rule"])


@pytest.mark.parametrize("text, expected", [
    ("90% approved", True), ("at least ninety percent", True), ("zero complaints", True),
    ("under 2 seconds", True), ("great copy", False), ("", False), (None, False),
])
def test_is_measurable(text: str | None, expected: bool) -> None:
    assert is_measurable(text) is expected


@pytest.mark.parametrize("metric, expected", [
    ("% of descriptions approved", True), ("approval rate", True), ("share of outputs flagged", True),
    ("flagged claims per 100 outputs", True), ("complaints per order", True),
    ("clicks per week", False), ("number of page views", False), ("total sessions", False),
])
def test_is_rate(metric: str, expected: bool) -> None:
    assert is_rate(metric) is expected


def test_min_words_above_max_words_fails(good: dict[str, Any]) -> None:
    good["output"]["min_words"] = 200
    assert not lint(Brief.model_validate(good)).result("output-contract-fields").passed


# ---- to_messages -----------------------------------------------------------------------------


def test_messages_hold_every_fact_of_a_real_product(product: dict[str, Any]) -> None:
    brief = reference.load_brief()
    messages = brief.to_messages(product)
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[-1]["content"]
    assert product["name"] in user
    assert f"${product['price_usd']:.2f}" in user
    for spec in str(product["key_specs"]).split(";"):
        assert spec.strip() in user
    for limit in str(product["not_true"]).split(";"):
        assert f"- {limit.strip()}" in user
    assert "do not claim the opposite" in user
    assert missing_facts("\n".join(m["content"] for m in messages), product) == []
    assert "sku" not in user.lower() and product["sku"] not in user


def test_system_prompt_carries_the_brief() -> None:
    brief = reference.load_brief()
    system = brief.to_messages({"name": "Test Lantern"})[0]["content"]
    assert brief.constraints.brand_voice in system
    assert "40 to 120 words" in system
    assert brief.constraints.banned_claims[0] in system
    assert "never invent" in system


def test_each_product_gets_its_own_message() -> None:
    brief = reference.load_brief()
    rows = data.load("products").head(5)
    users = {brief.to_messages(row)[-1]["content"] for _, row in rows.iterrows()}
    assert len(users) == 5


@pytest.mark.parametrize("empty", [None, float("nan"), pd.NA, "", "   "])
def test_missing_optional_fields_are_skipped(product: dict[str, Any], empty: Any) -> None:
    for field in ("weight_g", "materials", "certifications", "not_true", "persona", "channel_focus"):
        product[field] = empty
    user = reference.load_brief().to_messages(product)[-1]["content"]
    assert product["name"] in user
    for label in ("Weight", "Materials", "Certifications", "Written for", "Channel"):
        assert f"\n- {label}:" not in user
    assert "Limits of this product" not in user
    for leaked in ("nan", "None", "<NA>"):
        assert leaked not in user.split()


def test_series_and_unknown_columns(product: dict[str, Any]) -> None:
    row = pd.Series({**product, "colour_range": "slate; moss"})
    user = reference.load_brief().to_messages(row)[-1]["content"]
    assert "Colour range: slate; moss" in user


def test_few_shot_examples_come_before_the_record(product: dict[str, Any]) -> None:
    example = {"name": "Example Lantern", "category": "lighting", "key_specs": "Output: 100 lumen"}
    messages = reference.load_brief().to_messages(product, examples=[(example, "A lantern that...")])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "Example Lantern" in messages[1]["content"] and messages[2]["content"] == "A lantern that..."
    assert product["name"] in messages[3]["content"]
    with pytest.raises(TypeError, match="each example"):
        reference.load_brief().to_messages(product, examples=["not a pair at all"])


def test_vague_brief_still_compiles(product: dict[str, Any]) -> None:
    messages = Brief.from_yaml(VAGUE).to_messages(product)
    assert "marketing copy" in messages[0]["content"]
    assert product["name"] in messages[-1]["content"]


def test_a_record_must_be_a_mapping_or_row() -> None:
    with pytest.raises(TypeError, match="record must be"):
        reference.load_brief().to_messages("Moraine 45 Alpine Pack")


def test_yaml_fix_names_a_leading_character_that_yaml_reads_as_syntax() -> None:
    for text, expected in (("objective:\n  statement: %20 more clicks\n", "starts its text with '%'"),
                           ("- just text\nobjective: x\n", "starts with '-'")):
        with pytest.raises(BriefError) as err:
            Brief.from_yaml(text)
        assert expected in err.value.fix and "quotes" in err.value.fix


@pytest.mark.parametrize("freshness", ["exported every Tuesday at 09:00", "exported each Monday",
                                       "refreshed every weekday morning"])
def test_a_schedule_in_plain_words_is_a_freshness(freshness) -> None:
    """Issue 26: the capstone's linter rejected a weekly export said with the day's name."""
    from marketlab.brief.lint import _FRESHNESS

    assert _FRESHNESS.search(freshness)


@pytest.mark.parametrize("owner, ours", [("Vendor account team", False), ("the supplier's success manager", False),
                                         ("CRM manager at Ridgeline, who approves each retrained model from the vendor",
                                          True), ("Head of CRM", True)])
def test_the_vendor_owns_nothing_in_any_role(owner, ours) -> None:
    """Issue 26: Lab 5 accepted 'prompt_owner: Vendor account team' although the lab says the vendor is no owner."""
    from marketlab import reference
    from marketlab.brief.lint import _owner_named

    brief = reference.load_brief()
    brief = brief.model_copy(update={"ownership": brief.ownership.model_copy(update={"prompt_owner": owner})})
    assert _owner_named(brief)[0] is ours, _owner_named(brief)
