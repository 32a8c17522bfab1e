"""Reused prompt starts never change a reply; the store keeps to its memory limit; first tokens come first.

The store's rules are tested on their own (no model). Everything else runs the real model: the KV
bytes of a prompt start restored and then read on equal those of the same start read whole; over
HTTP with the real openai SDK, replies from the session's server (reuse on) equal those of a server
started with `--prefix-cache-mb 0` (reuse off, each request read alone), for prompt lengths around
block boundaries, greedy, seeded and json_schema, plain and streamed, alone and among others.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import openai
import pytest

from marketlab import llm
from marketlab.llm.prefix_cache import PrefixCache, block_hashes, reusable_blocks
from tests.support.background import Background

B = 4  # block of the store-only tests


# -- the store, without a model ---------------------------------------------------------------

def test_block_hashes_name_the_whole_start_not_just_the_block():
    one = block_hashes([1, 2, 3, 4, 5, 6, 7, 8, 9], B)
    assert len(one) == 2  # full blocks only
    assert block_hashes([1, 2, 3, 4, 5, 6, 7, 8], B) == one
    other = block_hashes([0, 2, 3, 4, 5, 6, 7, 8], B)
    assert other[0] != one[0] and other[1] != one[1]  # block 2 is equal, but what came before is not
    assert block_hashes([1, 2, 3, 4, 9, 9, 9, 9], B)[0] == one[0]


@pytest.mark.parametrize("length, blocks", [(B - 1, 0), (B, 0), (B + 1, 1), (2 * B - 1, 1), (2 * B, 1), (2 * B + 1, 2)])
def test_the_last_prompt_token_is_never_taken_from_the_store(length, blocks):
    assert reusable_blocks(length, B) == blocks


def _fill(cache: PrefixCache, tokens: list[int], size: int) -> None:
    hashes = block_hashes(tokens, B)
    boundary = cache.plan(tokens, hashes, 0)
    if boundary:
        cache.store(tokens[:boundary], hashes[boundary // B - 1], bytes(size))


def test_a_start_is_stored_when_a_second_prompt_shares_it_and_reused_from_the_third():
    cache = PrefixCache(1000, B)
    brief = [7] * 8
    first, second, third = brief + [1, 2, 3], brief + [4, 5, 6], brief + [8, 9]
    assert cache.lookup(first, block_hashes(first, B)) is None
    assert cache.plan(first, block_hashes(first, B), 0) == 0  # nobody shared it yet
    assert cache.lookup(second, block_hashes(second, B)) is None
    assert cache.plan(second, block_hashes(second, B), 0) == 8  # the longest boundary both share
    cache.store(second[:8], block_hashes(second, B)[1], b"state of 8 tokens")
    assert cache.lookup(third, block_hashes(third, B)) == (8, b"state of 8 tokens")
    assert cache.plan(third, block_hashes(third, B), 8) == 0  # nothing longer shared
    assert cache.stored(brief) == b"state of 8 tokens"


def test_a_hash_that_matches_other_tokens_hands_over_nothing():
    cache = PrefixCache(1000, B)
    tokens = [1, 2, 3, 4, 5]
    forged = [9, 9, 9, 9, 5]
    cache.store(forged[:4], block_hashes(tokens, B)[0], b"someone else's state")  # as if the hashes collided
    assert cache.lookup(tokens, block_hashes(tokens, B)) is None


def test_the_store_keeps_to_its_limit_evicting_the_least_recently_used():
    cache = PrefixCache(250, B)
    prompts = [[n] * 9 for n in range(4)]  # four different starts of 8 tokens
    for tokens in prompts:
        _fill(cache, tokens, 100)
        _fill(cache, tokens, 100)  # the second sending stores it
        assert cache.bytes <= 250
    stats = cache.stats()
    assert stats["entries"] == 2 and stats["bytes"] == 200 and stats["evictions"] == 2
    assert cache.lookup(prompts[0], block_hashes(prompts[0], B)) is None  # the oldest went first
    assert cache.lookup(prompts[2], block_hashes(prompts[2], B)) is not None  # used just now: kept
    _fill(cache, [5] * 9, 100)
    _fill(cache, [5] * 9, 100)
    assert cache.lookup(prompts[2], block_hashes(prompts[2], B)) is not None
    assert cache.lookup(prompts[3], block_hashes(prompts[3], B)) is None  # least recently used
    assert not cache.store([6] * 8, block_hashes([6] * 8, B)[1], bytes(251))  # larger than the limit: never kept
    assert cache.bytes <= 250


def test_a_limit_of_zero_turns_reuse_off():
    cache = PrefixCache(0, B)
    tokens = [1] * 9
    for _ in range(3):
        assert cache.lookup(tokens, block_hashes(tokens, B)) is None
        assert cache.plan(tokens, block_hashes(tokens, B), 0) == 0
    assert not cache.store(tokens[:8], block_hashes(tokens, B)[1], b"x")
    cache.count(0, 9)
    assert cache.stats()["misses"] == 1 and cache.stats()["entries"] == 0


# -- the engine, in this process -------------------------------------------------------------

@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    from marketlab.llm.engine import LocalEngine

    engine = LocalEngine(n_ctx=1024, slots=2, block=64, prefix_cache_mb=64)
    yield engine
    engine.close()


SYSTEM = ("You write product copy for an outdoor shop. Use only the facts given. Keep it short, plain and warm, "
          "name the product, mention its weight and what it is for, and never invent a number. ") * 2


def _request(user: str, **options: Any) -> Any:
    from marketlab.llm.protocol import parse_chat_request

    return parse_chat_request({"model": llm.model_name(), "max_tokens": 16, "temperature": 0, **options,
                               "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]})


def _text(engine: Any, request: Any) -> str:
    return engine.complete(request)["choices"][0]["message"]["content"]


@pytest.mark.model
def test_a_restored_start_read_on_gives_the_same_kv_bytes_as_reading_it_whole(engine):
    cache = engine.prefix_cache
    long_user = "Facts: a two-person tent, 1.9 kg, three seasons, two doors, aluminium poles, taped seams. " * 3
    whole = _request(long_user)
    other = _request("Facts: a headlamp, 80 g, 400 lumens, rechargeable.")
    tokens = engine.prompt(whole)
    deep = reusable_blocks(len(tokens), 64) * 64
    shared = len(os.path.commonprefix([tokens, engine.prompt(other)])) // 64 * 64
    assert 0 < shared < deep, "the test needs a shared start shorter than the long prompt's own"
    cache.clear()
    reply = _text(engine, whole)
    assert _text(engine, whole) == reply  # the second sending stores the deepest boundary, read whole
    read_whole = cache.stored(tokens[:deep])
    assert read_whole is not None
    cache.clear()
    assert _text(engine, whole) == reply  # remembered again, nothing stored
    assert _text(engine, other)  # shares the system message: stores that shorter start, read whole
    assert cache.stored(tokens[:shared]) is not None and cache.stored(tokens[:deep]) is None
    hits = cache.stats()["hits"]
    assert _text(engine, whole) == reply  # restores the shorter start, reads on, stores the deepest boundary
    assert cache.stats()["hits"] == hits + 1
    restored_then_read = cache.stored(tokens[:deep])
    assert restored_then_read is not None
    assert restored_then_read == read_whole, "the KV state after a restored start differs from reading it whole"
    assert _text(engine, whole) == reply  # and from the deepest boundary, one block and the last token read


@pytest.mark.model
def test_the_engine_keeps_its_store_within_the_limit(engine):
    cache = engine.prefix_cache
    facts = "Facts: a stove, 300 g, gas canister, folding legs, wind shield, piezo igniter. " * 3
    users = [f"{opening} {facts}" for opening in ("Tent.", "Lamp.", "Boots.")]  # three different starts
    deep = [engine.prompt(_request(user)) for user in users]
    deep = [tokens[:reusable_blocks(len(tokens), 64) * 64] for tokens in deep]
    cache.clear()
    _text(engine, _request(users[0]))
    _text(engine, _request(users[0]))
    one = cache.stored(deep[0])
    assert one is not None
    cache.clear()
    evictions = cache.stats()["evictions"]
    cache.limit_bytes = int(1.5 * len(one))  # room for one deep start, not two
    try:
        for user in users:
            _text(engine, _request(user))
            _text(engine, _request(user))  # its deep start stored
            assert 0 < cache.bytes <= cache.limit_bytes
        assert cache.stats()["evictions"] >= evictions + 2
        assert cache.stored(deep[2]) is not None  # the latest is kept, the older ones made room
        assert cache.stored(deep[0]) is None and cache.stored(deep[1]) is None
    finally:
        cache.limit_bytes = 64 * 2**20
        cache.clear()


# -- the real server over HTTP ---------------------------------------------------------------

def _health(base_url: str) -> dict[str, Any]:
    return httpx2.get(base_url.removesuffix("/v1") + "/health", timeout=10).json()


@pytest.fixture(scope="module")
def reuse_off_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second real server, started as a user would with `--prefix-cache-mb 0`: every prompt read whole."""
    from marketlab.llm.local import _free_port

    port = _free_port()
    home = tmp_path_factory.mktemp("reuse-off-home")
    log = open(home / "server.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen([sys.executable, "-m", "marketlab.llm.server", "--port", str(port), "--parallel", "2",
                                "--n-ctx", "2048", "--prefix-cache-mb", "0"], stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "MARKETLAB_HOME": str(home)})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx2.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx2.HTTPError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, (home / "server.log").read_text()[-2000:]
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(60)
        log.close()


def _ask(base_url: str, messages: list[dict[str, str]], stream: bool = False, user: str = "learner",
         **options: Any) -> tuple[str, int]:
    """The reply's text and the prompt's token count, through the real openai SDK."""
    api = openai.OpenAI(base_url=base_url, api_key="not-needed", max_retries=0, timeout=900)
    if stream:
        chunks = list(api.chat.completions.create(model=llm.model_name(), messages=messages, stream=True, user=user,
                                                  stream_options={"include_usage": True}, **options))
        usage = next(c.usage for c in chunks if c.usage is not None)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), usage.prompt_tokens
    reply = api.chat.completions.create(model=llm.model_name(), messages=messages, user=user, **options)
    return reply.choices[0].message.content or "", reply.usage.prompt_tokens


WORDS = ("red blue green tent lamp stove boots pack rope map coat hat cup pan fork knife match pole peg bag "
         "mat sock glove bottle filter compass whistle torch").split()  # one token each, after a space
PROMPT_SYSTEM = "You name outdoor gear."


def _messages(words: int) -> list[dict[str, str]]:
    listed = " ".join(WORDS[i % len(WORDS)] for i in range(words))
    return [{"role": "system", "content": PROMPT_SYSTEM},
            {"role": "user", "content": f"Write one line about these: {listed}"}]


@pytest.fixture(scope="module")
def prompts_by_length(reuse_off_url: str, local_base_url: str) -> dict[int, list[dict[str, str]]]:
    """Prompts of exactly B-1, B, B+1, 2B-1, 2B and 2B+1 tokens for the server's block B (counted by the server)."""
    block = int(_health(local_base_url)["prefix_cache"]["block_tokens"])
    found: dict[int, list[dict[str, str]]] = {}
    words = 0
    for target in (length(block) for length in OFFSETS.values()):
        for _ in range(12):
            messages = _messages(words)
            count = _ask(reuse_off_url, messages, max_tokens=1, temperature=0)[1]
            if count == target:
                found[target] = messages
                break
            words += max(1, target - count) if count < target else -1
        assert target in found, f"no prompt of exactly {target} tokens found"
    return found


SCHEMA = {"type": "json_schema", "json_schema": {"name": "line", "schema": {
    "type": "object", "properties": {"line": {"type": "string"}}, "required": ["line"], "additionalProperties": False}}}
MODES = {"greedy": {"temperature": 0}, "seeded": {"temperature": 1.0, "seed": 42},
         "json_schema": {"temperature": 0, "response_format": SCHEMA}}
LONG_REPLY = {"type": "json_schema", "json_schema": {"name": "story", "schema": {
    "type": "object", "properties": {"story": {"type": "string", "minLength": 2000}},
    "required": ["story"], "additionalProperties": False}}}


OFFSETS: dict[str, Callable[[int], int]] = {
    "B-1": lambda b: b - 1, "B": lambda b: b, "B+1": lambda b: b + 1,
    "2B-1": lambda b: 2 * b - 1, "2B": lambda b: 2 * b, "2B+1": lambda b: 2 * b + 1}


# Greedy at every length around the first two boundaries; seeded and json_schema where reuse starts and stops.
CASES = [("greedy", offset) for offset in OFFSETS] + [
    (mode, offset) for mode in ("seeded", "json_schema") for offset in ("B", "B+1", "2B+1")]


@pytest.mark.model
@pytest.mark.parametrize("mode, offset", CASES)
def test_a_reply_is_the_same_read_alone_reused_streamed_and_among_others(
        local_base_url, reuse_off_url, prompts_by_length, mode, offset):
    block = int(_health(local_base_url)["prefix_cache"]["block_tokens"])
    length = OFFSETS[offset](block)
    messages = prompts_by_length[length]
    options = {"max_tokens": 24, **MODES[mode]}
    alone, counted = _ask(reuse_off_url, messages, **options)  # reuse off: read whole, alone
    assert counted == length and alone.strip()
    before = _health(local_base_url)["prefix_cache"]
    assert _ask(local_base_url, messages, **options)[0] == alone  # first sending: remembered
    assert _ask(local_base_url, messages, stream=True, **options)[0] == alone  # second: its start stored
    crowd = Background()
    crowd.start("other", lambda: _ask(local_base_url, [{"role": "user", "content": "Describe a headlamp at length."}],
                                      user="other", max_tokens=120, temperature=0.8, response_format=LONG_REPLY))
    crowd.start("reused", lambda: _ask(local_base_url, messages, user="learner-a", **options)[0])
    crowd.start("reused streamed", lambda: _ask(local_base_url, messages, stream=True, user="learner-b",
                                                **options)[0])
    crowd.join()
    assert crowd.results["reused"] == alone
    assert crowd.results["reused streamed"] == alone
    after = _health(local_base_url)["prefix_cache"]
    expected = reusable_blocks(length, block) * block  # the last full block before the last prompt token
    reused = after["tokens_reused"] - before["tokens_reused"]
    if expected:
        assert 2 * expected <= reused <= 4 * expected, (reused, expected)
        assert after["hits"] >= before["hits"] + 2
    else:
        assert reused == 0


def _lab_messages(count: int) -> list[list[dict[str, str]]]:
    from marketlab import data, reference

    brief, products = reference.load_brief(), data.load("products")
    return [brief.to_messages(products.iloc[i].to_dict()) for i in range(count)]


@pytest.mark.model
def test_lab_2_replies_are_the_same_with_the_brief_reused_or_read_whole(local_base_url, reuse_off_url):
    lab = _lab_messages(4)
    options = {"max_tokens": 40, "temperature": 0}
    alone = [_ask(reuse_off_url, messages, **options)[0] for messages in lab]
    before = _health(local_base_url)["prefix_cache"]
    crowd = Background()
    for i, messages in enumerate(lab):  # a class: everyone at once, half of them streamed
        crowd.start(f"learner-{i}", lambda m=messages, i=i: _ask(local_base_url, m, stream=i % 2 == 1,
                                                                  user=f"learner-{i}", **options)[0])
    crowd.join()
    assert [crowd.results[f"learner-{i}"] for i in range(len(lab))] == alone
    again = [_ask(local_base_url, messages, user=f"late-{i}", **options)[0] for i, messages in enumerate(lab)]
    assert again == alone
    after = _health(local_base_url)["prefix_cache"]
    assert after["hits"] - before["hits"] >= len(lab), "the brief was not reused by the later learners"


@pytest.mark.model
def test_metrics_are_prometheus_text_that_agrees_with_health(local_base_url):
    _ask(local_base_url, [{"role": "user", "content": "Hi"}], max_tokens=2, temperature=0)
    root = local_base_url.removesuffix("/v1")
    text = httpx2.get(f"{root}/metrics", timeout=10).text
    health = _health(local_base_url)
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line and line[0] != "#"}
    assert "# TYPE marketlab_prefix_cache_hits_total counter" in text
    assert values["marketlab_prefix_cache_limit_bytes"] == health["prefix_cache"]["limit_bytes"] > 0
    assert values["marketlab_prefix_cache_hits_total"] >= 0
    assert values["marketlab_prefix_cache_bytes"] <= values["marketlab_prefix_cache_limit_bytes"]
    assert values["marketlab_slots"] == health["slots"]
    assert values["marketlab_requests_total"] >= 1 and values["marketlab_generated_tokens_total"] >= 1
    assert values["marketlab_time_to_first_token_p90_seconds"] > 0


# -- first tokens first ------------------------------------------------------------------------

@pytest.mark.model
def test_a_learner_arriving_while_others_write_long_replies_gets_a_first_token_before_they_finish(local_base_url):
    def long_reply(user: str) -> float:
        _ask(local_base_url, [{"role": "user", "content": f"Tell {user} a long story about a tent."}], user=user,
             max_tokens=150, temperature=0, response_format=LONG_REPLY)
        return time.monotonic()

    writers = Background()
    for name in ("writer-1", "writer-2"):
        writers.start(name, lambda name=name: long_reply(name))
    deadline = time.monotonic() + 300
    while _health(local_base_url).get("decoding", 0) < 2:
        assert time.monotonic() < deadline, "the long replies never started"
        time.sleep(0.05)
    time.sleep(1.0)  # both are writing now
    lab = _lab_messages(6)[5]  # a lab-sized prompt: several blocks to read while they write
    api = openai.OpenAI(base_url=local_base_url, api_key="not-needed", max_retries=0, timeout=900)
    first_token = None
    for chunk in api.chat.completions.create(model=llm.model_name(), messages=lab, stream=True, user="newcomer",
                                             max_tokens=20, temperature=0):
        if first_token is None and chunk.choices and chunk.choices[0].delta.content:
            first_token = time.monotonic()
    writers.join()
    assert first_token is not None
    assert all(writers.results[name] > first_token for name in ("writer-1", "writer-2")), (
        "the newcomer's first token waited for the long replies to finish")


@pytest.mark.model
def test_serve_status_shows_first_tokens_speed_and_prompt_reuse(local_base_url):
    _ask(local_base_url, [{"role": "user", "content": "Hi"}], max_tokens=2, temperature=0)
    done = subprocess.run([sys.executable, "-m", "marketlab", "serve", "--status"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Running: pid" in out
    assert "Time to first token (last " in out and "90th percentile" in out
    assert "Tokens per second while busy:" in out
    assert "Prompt reuse:" in out and "MB used" in out
