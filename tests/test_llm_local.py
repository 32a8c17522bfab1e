"""Round trips through the real openai SDK against the real embedded model server."""

from __future__ import annotations

import json
import threading

import httpx2
import openai
import pytest
from pydantic import BaseModel

from marketlab import llm

PROMPTS = [
    "Write one sentence about a waterproof hiking jacket.",
    "Name three things to pack for a weekend camping trip.",
    "Describe a headlamp in one sentence.",
    "Give a short slogan for a trail running shoe.",
]


class ProductCopy(BaseModel):
    headline: str
    body: str


@pytest.fixture(scope="module")
def api(local_base_url: str) -> openai.OpenAI:
    return llm.client()


def ask(api: openai.OpenAI, prompt: str, **kwargs) -> str:
    options = {"max_tokens": 40, "temperature": 0} | kwargs
    reply = api.chat.completions.create(model=llm.model_name(), messages=[{"role": "user", "content": prompt}],
                                        **options)
    return reply.choices[0].message.content


def test_plain_chat_returns_text_and_usage(api):
    reply = api.chat.completions.create(model=llm.model_name(), max_tokens=30, temperature=0,
                                        messages=[{"role": "system", "content": "You write product copy."},
                                                  {"role": "user", "content": PROMPTS[0]}])
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content.strip()
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.model == llm.model_name()
    assert reply.usage.prompt_tokens > 10
    assert 0 < reply.usage.completion_tokens <= 30
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_models_lists_the_local_model(api):
    assert [m.id for m in api.models.list()] == [llm.model_name()]


def test_streaming_gives_the_same_text_as_a_plain_call(api):
    plain = ask(api, PROMPTS[1])
    stream = api.chat.completions.create(model=llm.model_name(), max_tokens=40, temperature=0, stream=True,
                                         stream_options={"include_usage": True},
                                         messages=[{"role": "user", "content": PROMPTS[1]}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
    assert text == plain
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_parse_with_a_pydantic_model(api):
    completion = api.chat.completions.parse(
        model=llm.model_name(), response_format=ProductCopy, temperature=0, max_tokens=150,
        messages=[{"role": "user", "content": "Write a headline and a body for a 2-person tent."}])
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, ProductCopy)
    assert parsed.headline.strip() and parsed.body.strip()


def test_json_object_mode_returns_json(api):
    reply = api.chat.completions.create(
        model=llm.model_name(), max_tokens=300, temperature=0, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Give a JSON object with one key, colour, for a red jacket."}])
    assert reply.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(reply.choices[0].message.content), dict)


def test_greedy_output_does_not_depend_on_the_previous_request(api):
    first = ask(api, PROMPTS[0])
    ask(api, PROMPTS[2] + " Make it long and detailed.", max_tokens=60)
    assert ask(api, PROMPTS[0]) == first


def test_seeded_sampling_repeats_exactly_and_unseeded_varies(api):
    seeded = ask(api, PROMPTS[3], temperature=1.0, seed=42)
    ask(api, PROMPTS[1], temperature=1.0)
    assert ask(api, PROMPTS[3], temperature=1.0, seed=42) == seeded
    unseeded = {ask(api, PROMPTS[3], temperature=1.2, max_tokens=30) for _ in range(3)}
    assert len(unseeded) > 1


def test_stop_and_max_tokens(api):
    reply = api.chat.completions.create(model=llm.model_name(), max_tokens=5, temperature=0,
                                        messages=[{"role": "user", "content": PROMPTS[2]}])
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 5
    full = ask(api, PROMPTS[1], max_tokens=40)
    word = full.split()[3]
    stopped = ask(api, PROMPTS[1], max_tokens=40, stop=[word])
    assert word not in stopped and full.startswith(stopped)


def test_four_concurrent_clients_get_their_own_correct_answers(local_base_url):
    expected = {p: ask(llm.client(), p) for p in PROMPTS}
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def worker(prompt: str) -> None:
        try:
            results[prompt] = ask(llm.client(), prompt)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(p,)) for p in PROMPTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert results == expected


@pytest.mark.parametrize("kwargs, param", [
    ({"extra_body": {"colour_of_sky": "blue"}}, "colour_of_sky"),
    ({"n": 2}, "n"),
    ({"temperature": 5}, "temperature"),
    ({"response_format": {"type": "xml"}}, "response_format.type"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, "tools"),
])
def test_bad_requests_get_openai_shaped_400s(api, kwargs, param):
    with pytest.raises(openai.BadRequestError) as caught:
        api.chat.completions.create(model=llm.model_name(), messages=[{"role": "user", "content": "hi"}],
                                    max_tokens=5, **kwargs)
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == param
    assert caught.value.body["message"]


def test_context_overflow_is_a_400_and_the_server_survives(api):
    huge = "tent " * 6000
    with pytest.raises(openai.BadRequestError) as caught:
        api.chat.completions.create(model=llm.model_name(), messages=[{"role": "user", "content": huge}],
                                    max_tokens=5)
    assert caught.value.code == "context_length_exceeded"
    assert ask(api, PROMPTS[2], max_tokens=5)


def test_malformed_json_body_is_a_400(local_base_url):
    reply = httpx2.post(f"{local_base_url}/chat/completions", content=b'{"model": "x", "messages": [',
                        headers={"content-type": "application/json"})
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "invalid_json"
    unknown = httpx2.get(f"{local_base_url}/nothing-here")
    assert unknown.status_code == 404 and "error" in unknown.json()


def test_abandoned_stream_releases_the_model(api):
    stream = api.chat.completions.create(model=llm.model_name(), max_tokens=200, temperature=0, stream=True,
                                         messages=[{"role": "user", "content": PROMPTS[2]}])
    next(iter(stream))
    stream.close()
    assert ask(api, PROMPTS[0], max_tokens=5)


def test_an_unknown_model_is_a_404_that_names_the_models_served(api):
    with pytest.raises(openai.NotFoundError) as caught:
        api.chat.completions.create(model="gpt-4o", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 404
    error = caught.value.body
    assert error["code"] == "model_not_found" and error["type"] == "invalid_request_error"
    assert error["param"] == "model"
    assert "`gpt-4o`" in error["message"] and llm.model_name() in error["message"]
    assert ask(api, PROMPTS[2], max_tokens=5)  # the server goes on serving the real name


def test_a_missing_model_is_a_400(local_base_url):
    reply = httpx2.post(f"{local_base_url}/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "model" and llm.model_name() in reply.json()["error"]["message"]
