"""Several learners at once on the real local server: same bytes for the same request, overlap, fairness."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx2
import openai
import pytest

from marketlab import llm
from tests.support.background import Background

# A reply the grammar keeps going until max_tokens, whatever the model would rather do.
LONG_REPLY = {"type": "json_schema", "json_schema": {"name": "story", "schema": {
    "type": "object", "properties": {"story": {"type": "string", "minLength": 2000}},
    "required": ["story"], "additionalProperties": False}}}
PROMPT = "Write two sentences about a waterproof hiking jacket for a weekend hiker."


def _health(base_url: str) -> dict[str, Any]:
    return httpx2.get(base_url.removesuffix("/v1") + "/health", timeout=5).json()


def _wait_for(condition: Callable[[], bool], what: str, limit_s: float = 120.0) -> None:
    """Poll until `condition()` holds (a wait with a safety limit, not a timing assertion)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def _create(user: str | None = None, stream: bool = False, **kwargs: Any) -> str:
    options = {"max_tokens": 60, "temperature": 0, "messages": [{"role": "user", "content": PROMPT}]} | kwargs
    if user is not None:
        options["user"] = user
    api = llm.client(max_retries=0, timeout=600)
    if stream:
        chunks = api.chat.completions.create(model=llm.model_name(), stream=True, **options)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return api.chat.completions.create(model=llm.model_name(), **options).choices[0].message.content


def _lab_request() -> dict[str, Any]:
    """Lab 2's product-copy request (about 450 tokens: read in pieces when others arrive with it)."""
    from marketlab import data, reference

    messages = reference.load_brief().to_messages(data.load("products").iloc[2].to_dict())
    return {"temperature": 0, "max_tokens": 80, "messages": messages}


@pytest.mark.parametrize("sampling", [{"temperature": 0}, {"temperature": 1.0, "seed": 42}, "lab"],
                         ids=["greedy", "seeded", "lab-sized greedy"])
def test_the_same_request_gives_the_same_text_alone_and_among_concurrent_requests(local_base_url, sampling):
    sampling = _lab_request() if sampling == "lab" else sampling
    alone = _create(**sampling)
    load = Background(600)
    load.start("long", lambda: _create("other-1", max_tokens=200, response_format=LONG_REPLY))
    load.start("json", lambda: _create("other-2", max_tokens=80, response_format={"type": "json_object"},
                                       messages=[{"role": "user", "content": "A JSON object for a red tent."}]))
    load.start("stream", lambda: _create("other-3", stream=True, max_tokens=120, temperature=0.8,
                                         messages=[{"role": "user", "content": "Describe a headlamp at length."}]))
    _wait_for(lambda: _health(local_base_url).get("decoding", 0) >= 2, "the other requests to be decoding")
    load.start("copy", lambda: _create("learner-a", **sampling))
    load.start("copy streamed", lambda: _create("learner-b", stream=True, **sampling))
    load.join()
    assert alone.strip()
    assert load.results["copy"] == alone
    assert load.results["copy streamed"] == alone
    assert _create(**sampling) == alone  # and once more alone, after the crowd


def test_a_short_request_is_answered_while_a_long_one_is_still_decoding(local_base_url):
    load = Background(600)
    load.start("long", lambda: _create("writer", max_tokens=400, response_format=LONG_REPLY))
    _wait_for(lambda: _health(local_base_url).get("decoding", 0) >= 1, "the long request to be decoding")
    short = _create("reader", max_tokens=5)
    still_running = "long" not in load.results
    load.join()
    assert short
    assert still_running, "the short request waited for the long one to finish (one request at a time)"


def test_one_learners_burst_does_not_starve_another_learner(local_base_url):
    slots = int(_health(local_base_url)["slots"])
    load = Background(600)
    for i in range(2 * slots):  # every slot busy with the hog's requests, as many again waiting
        load.start(f"hog-{i}", lambda: _create("hog", max_tokens=150, response_format=LONG_REPLY))
    _wait_for(lambda: _health(local_base_url).get("waiting", 0) >= slots, "the hog's requests to fill the queue")
    quiet = _create("quiet", max_tokens=5)
    quiet_done = time.monotonic()
    load.join()
    assert quiet
    hog_before = sum(1 for name, at in load.finished.items() if at < quiet_done)
    # Served in arrival order the quiet learner would wait behind all of the hog's waiting requests.
    assert hog_before <= slots, f"{hog_before} of the hog's requests finished before the quiet learner's one"


def test_user_must_be_a_string(local_base_url):
    with pytest.raises(openai.BadRequestError) as caught:
        llm.client(max_retries=0).chat.completions.create(
            model=llm.model_name(), max_tokens=5, messages=[{"role": "user", "content": "hi"}],
            extra_body={"user": {"name": "x"}})
    assert caught.value.body["param"] == "user"
