"""The scripted endpoint: every fault reaches the real SDK as the SDK's own exception type."""

from __future__ import annotations

import time

import openai
import pydantic
import pytest
from pydantic import BaseModel, Field

from marketlab import llm
from marketlab.llm.testing import Fault, ScriptedEndpoint, example_for_schema, scripted_client

MESSAGES = [{"role": "user", "content": "Describe the Summit 2 tent."}]


class Copy(BaseModel):
    headline: str = Field(max_length=20)
    bullets: list[str] = Field(min_length=2)
    rating: int = Field(ge=1, le=5)


def create(api: openai.OpenAI, **kwargs):
    return api.chat.completions.create(model="scripted", messages=MESSAGES, **kwargs)


def test_scripted_replies_come_back_in_order_then_the_default():
    endpoint = ScriptedEndpoint(["first", {"content": "second", "finish_reason": "length"}])
    api = endpoint.client()
    assert create(api).choices[0].message.content == "first"
    second = create(api).choices[0]
    assert (second.message.content, second.finish_reason) == ("second", "length")
    assert create(api).choices[0].message.content == "Scripted reply to: Describe the Summit 2 tent."
    assert endpoint.calls == 3 and endpoint.requests[0]["messages"] == MESSAGES


def test_a_callable_reply_sees_the_request():
    api = scripted_client([lambda body: body["messages"][-1]["content"].upper()])
    assert create(api).choices[0].message.content == "DESCRIBE THE SUMMIT 2 TENT."


def test_rate_limit_raises_rate_limit_error_without_retries():
    with pytest.raises(openai.RateLimitError) as caught:
        create(scripted_client([Fault.rate_limit(retry_after=3)], max_retries=0))
    assert caught.value.response.headers["retry-after"] == "3"


def test_the_sdk_honours_retry_after_and_then_succeeds():
    endpoint = ScriptedEndpoint([Fault.rate_limit(retry_after=0.6), "after the wait"])
    started = time.perf_counter()
    reply = create(endpoint.client(max_retries=2))
    assert reply.choices[0].message.content == "after the wait"
    assert time.perf_counter() - started >= 0.6
    assert endpoint.calls == 2


def test_server_error_raises_internal_server_error():
    with pytest.raises(openai.InternalServerError):
        create(scripted_client([Fault.server_error()], max_retries=0))


def test_timeout_raises_api_timeout_error_after_the_sdk_retries():
    endpoint = ScriptedEndpoint([Fault.timeout(), Fault.timeout()])
    with pytest.raises(openai.APITimeoutError):
        create(endpoint.client(max_retries=1))
    assert endpoint.calls == 2


def test_malformed_json_fails_parse_with_a_validation_error():
    api = scripted_client([Fault.malformed_json()])
    with pytest.raises(pydantic.ValidationError):
        api.chat.completions.parse(model="scripted", messages=MESSAGES, response_format=Copy)


def test_truncated_json_raises_length_finish_reason_error():
    api = scripted_client([Fault.truncated_json(), Fault.truncated_json()])
    with pytest.raises(openai.LengthFinishReasonError):
        api.chat.completions.parse(model="scripted", messages=MESSAGES, response_format=Copy)
    assert create(api).choices[0].finish_reason == "length"


def test_default_reply_satisfies_the_requested_schema():
    parsed = scripted_client().chat.completions.parse(model="scripted", messages=MESSAGES,
                                                      response_format=Copy).choices[0].message.parsed
    assert isinstance(parsed, Copy)
    assert len(parsed.bullets) >= 2 and 1 <= parsed.rating <= 5 and len(parsed.headline) <= 20


def test_example_for_schema_follows_refs_enums_and_bounds():
    schema = {"type": "object", "properties": {
        "tone": {"enum": ["calm", "bold"]}, "score": {"type": "number", "minimum": 3, "maximum": 4},
        "item": {"$ref": "#/$defs/Item"}, "note": {"anyOf": [{"type": "null"}, {"type": "string"}]}},
        "$defs": {"Item": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 7}}}}}
    assert example_for_schema(schema) == {"tone": "calm", "score": 3.0, "item": {"n": 7}, "note": "scripted text"}


def test_scripted_backend_from_the_environment_records_usage(monkeypatch, fresh_home):
    monkeypatch.setenv("MARKETLAB_BACKEND", "scripted")
    reply = llm.client().chat.completions.create(model=llm.model_name(), messages=MESSAGES)
    assert reply.choices[0].message.content.startswith("Scripted reply to:")
    table = llm.usage_table()
    assert list(table["backend"]) == ["scripted"]
    assert table["prompt_tokens"].iloc[0] == reply.usage.prompt_tokens
