"""Issue 26: the scripted stand-in model follows the word limits the learner's brief states, so a dry run
of a correct brief passes and a brief that never states the limit still gets the fix "say the limit"."""

from __future__ import annotations

import json

import pandas as pd
from pydantic import BaseModel, Field

from marketlab import data, reference
from marketlab.brief import Brief
from marketlab.llm.testing import ScriptedEndpoint, default_reply, stated_word_limits
from marketlab.workflow import Rules, run_batch


class Spotlight(BaseModel):
    subject: str = Field(max_length=60)
    spotlight: str


def _brief(min_words: int | None, max_words: int | None) -> Brief:
    brief = reference.load_brief()
    return brief.model_copy(update={"output": brief.output.model_copy(update={"min_words": min_words,
                                                                               "max_words": max_words})})


def _dry_run(brief: Brief, rules: Rules) -> pd.DataFrame:
    table = data.load("products").head(3)
    return run_batch(table, lambda b, r: b.to_messages(r), Spotlight, ScriptedEndpoint().client(), "scripted",
                     brief=brief, rules=rules, include=["sku"], cache=False, checkpoint=False, progress=False,
                     show_summary=False)


def _words(text: str) -> int:
    return len(text.split())


def test_a_brief_that_states_its_limits_passes_the_dry_run() -> None:
    brief = _brief(20, 45)
    out = _dry_run(brief, Rules.from_brief(brief, "spotlight"))
    assert list(out["status"]) == ["ok"] * 3, out["error"].tolist()
    assert all(20 <= _words(text) <= 45 for text in out["spotlight"])
    assert all(len(text) <= 60 for text in out["subject"]), "the short field keeps to its own schema limit"


def test_a_brief_without_the_limit_still_fails_with_the_fix_to_state_it() -> None:
    out = _dry_run(_brief(None, None), Rules(min_words={"spotlight": 20}))
    assert set(out["status"]) == {"failed"}
    assert "'spotlight' has 2 words; at least 20 are needed" in out["error"].iloc[0]
    assert "say the limit in the brief" in out["error"].iloc[0]


def test_a_limit_named_for_one_field_goes_to_that_field() -> None:
    schema = {"type": "object", "properties": {"headline": {"type": "string"}, "spotlight": {"type": "string"},
                                               "tone": {"enum": ["calm", "bold"]}}}
    body = {"messages": [{"role": "system", "content": "The headline: 5 to 8 words, the spotlight 30 to 40 words."},
                         {"role": "user", "content": "Write it."}],
            "response_format": {"type": "json_schema", "json_schema": {"schema": schema}}}
    reply = json.loads(default_reply(body))
    assert 5 <= _words(reply["headline"]) <= 8 and 30 <= _words(reply["spotlight"]) <= 40
    assert reply["tone"] == "calm"


def test_a_length_in_a_fields_description_applies_to_that_field() -> None:
    schema = {"type": "object", "properties": {"spotlight": {"type": "string",
                                                             "description": "between 25 and 35 words"}}}
    body = {"messages": [{"role": "user", "content": "Write it."}],
            "response_format": {"type": "json_schema", "json_schema": {"schema": schema}}}
    assert 25 <= _words(json.loads(default_reply(body))["spotlight"]) <= 35


def test_stated_limits_in_plain_words() -> None:
    assert stated_word_limits("Length: 30 to 90 words.") == {None: (30, 90)}
    assert stated_word_limits("Write at least 20 words; no more than 50 words.") == {None: (20, 50)}
    assert stated_word_limits("Keep the spotlight under 40 words.", ("spotlight",)) == {"spotlight": (None, 40)}
    assert stated_word_limits("Write good copy.") == {}


def test_a_character_limit_in_a_fields_description_is_kept_too() -> None:
    """The email take-home states "at most 20 words" in the brief and "at most 60 characters" per field."""
    schema = {"type": "object", "properties": {
        "subject": {"type": "string", "description": "the email subject line, at most 60 characters"},
        "preview": {"type": "string", "description": "the preview text, at most 90 characters"}}}
    body = {"messages": [{"role": "system", "content": "Length: at most 20 words."}, {"role": "user", "content": "Go."}],
            "response_format": {"type": "json_schema", "json_schema": {"schema": schema}}}
    reply = json.loads(default_reply(body))
    assert 0 < len(reply["subject"]) <= 60 and 0 < len(reply["preview"]) <= 90
    assert _words(reply["preview"]) <= 20


def test_a_length_for_the_whole_text_does_not_go_into_a_field_too_short_for_it() -> None:
    schema = {"type": "object", "properties": {"headline": {"type": "string", "maxLength": 80}}}
    body = {"messages": [{"role": "system", "content": "Length: 40 to 120 words."}],
            "response_format": {"type": "json_schema", "json_schema": {"schema": schema}}}
    assert json.loads(default_reply(body))["headline"] == "scripted text"
