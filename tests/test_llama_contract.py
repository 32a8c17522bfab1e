"""What marketlab relies on in llama-cpp-python, checked through marketlab.llm.llama_adapter on the real model.

To try a newer llama-cpp-python: change the pin in pyproject.toml and environment.yml, run
`pytest tests/test_llama_contract.py`.

The adapter is the only module of marketlab that imports `llama_cpp` (tests/test_import_order.py checks
that); these tests call each thing the engine uses, on the installed package and the built-in model's real
weights, with prompts of a few tokens: tokenising and the chat template, one batch step and the logits of
its last token, per-sequence memory (removal, first and last positions), a sequence's state saved and put
back, sampler chains (greedy, seeded sampling, penalties), grammars (GBNF, JSON, a JSON schema), pieces of
text and the end of generation. When one fails after an upgrade, the adapter is the one place to mend.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from marketlab.llm.engine import model_file
from marketlab.llm.llama_adapter import (
    Context,
    Grammar,
    GrammarError,
    LlamaError,
    Model,
    SamplerChain,
    location,
    version,
)

# Loads the built-in model's weights in this process.
pytestmark = pytest.mark.model

SEQS = 2
CELLS = 256  # per sequence


@pytest.fixture(scope="module")
def model() -> Iterator[Model]:
    loaded = Model(model_file())
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def ctx(model: Model) -> Iterator[Context]:
    context = model.context(n_ctx=CELLS * SEQS, n_batch=CELLS, n_ubatch=CELLS, n_seq_max=SEQS, n_threads=2)
    yield context
    context.close()


@pytest.fixture
def empty(ctx: Context) -> Context:
    """The shared context with both sequences emptied."""
    for seq in range(SEQS):
        ctx.seq_rm(seq)
    return ctx


def read(ctx: Context, seq: int, tokens: list[int], start: int = 0) -> int:
    """Decode `tokens` into sequence `seq` from position `start`, keeping the last token's logits (its index)."""
    batch = ctx.batch()
    for n, token in enumerate(tokens):
        batch.add(token, start + n, seq, logits=n == len(tokens) - 1)
    ctx.decode(batch)
    batch.close()
    return len(tokens) - 1


def generate(model: Model, ctx: Context, chain: SamplerChain, prompt: list[int], seq: int = 0,
             limit: int = 40) -> tuple[str, bool]:
    """Greedy/sampled reply of up to `limit` tokens, as the engine writes one: its text and whether it ended."""
    index = read(ctx, seq, prompt)
    pieces, pos = b"", len(prompt)
    try:
        for _ in range(limit):
            token = ctx.sample(chain, index)
            if model.is_eog(token):
                return pieces.decode("utf-8"), True
            pieces += model.piece(token)
            index = read(ctx, seq, [token], pos)
            pos += 1
        return pieces.decode("utf-8", "replace"), False
    finally:
        chain.free()


def chat(model: Model, user: str) -> list[int]:
    prompt = model.chat_template().render([{"role": "user", "content": user}])
    return model.tokenize(prompt.text, add_bos=prompt.add_bos, special=True)


# -- the package and the model file -----------------------------------------------------------

def test_the_package_is_found_and_loading_says_nothing(model):
    assert version().count(".") >= 2 and (location() / "__init__.py").is_file()
    # llama.cpp's loading chatter stays out of the server log: only errors reach stderr.
    done = subprocess.run([sys.executable, "-c", "from marketlab.llm.engine import model_file\n"
                           "from marketlab.llm.llama_adapter import Model\nModel(model_file())\nprint('loaded')"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "loaded", done.stderr[-2000:]
    assert done.stderr == ""
    with pytest.raises(LlamaError, match="No model file"):
        Model(model_file().with_name("missing.gguf"))


def test_the_model_file_answers_its_vocabulary_and_metadata(model):
    assert model.n_vocab == 49152 and model.n_ctx_train >= 2048
    assert model.token_text(model.bos) == "<|im_start|>" and model.token_text(model.eos) == "<|im_end|>"
    assert model.metadata("general.architecture") == "llama"
    assert model.metadata("no.such.key") is None
    assert "<|im_start|>" in (model.metadata("tokenizer.chat_template") or "")


# -- tokens, pieces and the chat template --------------------------------------------------------

def test_tokenising_round_trips_through_pieces(model):
    text = "Waterproof jacket, 420 g — héllo ✓"
    tokens = model.tokenize(text, add_bos=False, special=True)
    assert 5 < len(tokens) < len(text) and all(0 <= token < model.n_vocab for token in tokens)
    assert b"".join(model.piece(token) for token in tokens).decode("utf-8") == text
    assert model.tokenize(text.encode("utf-8"), add_bos=False, special=True) == tokens
    long = model.tokenize("tent " * 3000, add_bos=False, special=True)  # more than the first buffer
    assert len(long) >= 3000


def test_bos_and_special_tokens(model):
    plain = model.tokenize("Hello world", add_bos=False, special=True)
    assert model.bos not in plain
    with_bos = model.tokenize("Hello world", add_bos=True, special=True)
    assert with_bos in (plain, [model.bos, *plain])  # BOS only if the vocabulary asks for one
    # `special` reads the chat template's markers as single tokens, never as their characters
    assert model.tokenize("<|im_start|>", add_bos=False, special=True) == [model.bos]
    assert len(model.tokenize("<|im_start|>", add_bos=False, special=False)) > 1
    assert model.piece(model.eos) == b"" and model.piece(model.bos) == b""  # special tokens add no text


def test_the_end_of_generation(model):
    assert model.is_eog(model.eos)
    assert not any(model.is_eog(token) for token in model.tokenize("Hello world.", add_bos=False, special=True))


def test_the_chat_template_renders_the_conversation(model):
    prompt = model.chat_template().render([{"role": "system", "content": "Be brief."},
                                           {"role": "user", "content": "Hi"}])
    assert prompt.text == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                           "<|im_start|>assistant\n")
    assert prompt.stops == ["<|im_end|>"] and prompt.add_bos is False
    tokens = model.tokenize(prompt.text, add_bos=prompt.add_bos, special=True)
    assert tokens[0] == model.bos and tokens.count(model.bos) == 3 and tokens.count(model.eos) == 2


# -- one batch step and per-sequence memory ----------------------------------------------------------

def test_one_batch_step_gives_the_logits_of_its_last_token(model, empty):
    tokens = model.tokenize("The capital of France is", add_bos=False, special=True)
    index = read(empty, 0, tokens)
    greedy = SamplerChain(model).greedy()
    assert model.piece(empty.sample(greedy, index)) == b" Paris"
    greedy.free()
    assert (empty.seq_pos_min(0), empty.seq_pos_max(0)) == (0, len(tokens) - 1)
    assert (empty.seq_pos_min(1), empty.seq_pos_max(1)) == (-1, -1)


def test_a_batch_of_two_sequences_keeps_them_apart(model, empty):
    same = model.tokenize("Monday, Tuesday,", add_bos=False, special=True)
    other = model.tokenize("1, 2, 3, 4,", add_bos=False, special=True)
    read(empty, 0, same)
    read(empty, 1, other)
    batch = empty.batch(2)
    assert batch.add(model.tokenize(" Wednesday", add_bos=False, special=True)[0], len(same), 0, True) == 0
    assert batch.add(model.tokenize(" 5", add_bos=False, special=True)[0], len(other), 1, True) == 1
    assert len(batch) == 2
    with pytest.raises(LlamaError, match="at most 2"):
        batch.add(0, 0, 0, True)
    empty.decode(batch)
    greedy = SamplerChain(model).greedy()
    assert model.piece(empty.sample(greedy, 0)) == b","  # "Monday, Tuesday, Wednesday" goes on
    assert model.piece(empty.sample(greedy, 1)) == b"5"  # "1, 2, 3, 4, " goes on
    greedy.free()
    batch.close()
    assert empty.seq_pos_max(0) == len(same) and empty.seq_pos_max(1) == len(other)


def test_a_decode_that_fails_raises(model, empty):
    batch = empty.batch(1)
    batch.add(model.bos, 0, SEQS, True)  # no such sequence
    with pytest.raises(LlamaError, match="llama_decode returned"):
        empty.decode(batch)
    batch.close()


def test_removing_one_sequence_leaves_the_other(model, empty):
    tokens = model.tokenize("A tent for two, 1.9 kg.", add_bos=False, special=True)
    read(empty, 0, tokens)
    read(empty, 1, tokens[:3])
    assert empty.seq_rm(0)
    assert (empty.seq_pos_min(0), empty.seq_pos_max(0)) == (-1, -1)
    assert (empty.seq_pos_min(1), empty.seq_pos_max(1)) == (0, 2)
    read(empty, 0, tokens[:2])  # an emptied sequence starts again at position 0
    assert empty.seq_pos_max(0) == 1


def test_a_sequence_state_put_back_gives_the_same_next_token(model, empty):
    tokens = model.tokenize("The capital of France is", add_bos=False, special=True)
    read(empty, 0, tokens[:-1])
    size = empty.state_size(0)
    saved = empty.state_get(0, size)
    assert size > 0 and len(saved) == size and empty.state_get(0) == saved
    greedy = SamplerChain(model).greedy()
    expected = empty.sample(greedy, read(empty, 0, tokens[-1:], len(tokens) - 1))
    assert empty.state_set(1, saved)
    assert (empty.seq_pos_min(1), empty.seq_pos_max(1)) == (0, len(tokens) - 2)
    assert empty.state_size(1) == size
    assert empty.sample(greedy, read(empty, 1, tokens[-1:], len(tokens) - 1)) == expected
    greedy.free()
    empty.seq_rm(1)
    assert not empty.state_set(1, saved[: len(saved) // 2]), "a cut state was taken whole"


# -- sampler chains -------------------------------------------------------------------------------

def _draws(model: Model, ctx: Context, index: int, seed: int, n: int = 12) -> list[int]:
    chain = (SamplerChain(model).top_k(40).typical(1.0, 1).top_p(1.0, 1).min_p(0.0, 1).temp(2.0).dist(seed))
    try:
        return [ctx.sample(chain, index) for _ in range(n)]
    finally:
        chain.free()


def test_greedy_is_deterministic_and_seeded_sampling_repeats(model, empty):
    index = read(empty, 0, model.tokenize("My favourite colour is", add_bos=False, special=True))
    greedy = [SamplerChain(model).greedy() for _ in range(2)]
    first = [empty.sample(chain, index) for chain in greedy]
    assert first[0] == first[1]
    top1 = SamplerChain(model).top_k(1).dist(5)
    assert empty.sample(top1, index) == first[0]  # the most likely token, whatever the seed
    for chain in [*greedy, top1]:
        chain.free()
    assert _draws(model, empty, index, seed=7) == _draws(model, empty, index, seed=7)
    assert _draws(model, empty, index, seed=7) != _draws(model, empty, index, seed=8)
    assert _draws(model, empty, index, seed=7) == _draws(model, empty, index, seed=7 + 2**32)  # 32 bits of seed
    assert len(set(_draws(model, empty, index, seed=7))) > 1  # sampling, not the top token every time


def test_a_repeat_penalty_turns_away_from_a_token_just_sampled(model, empty):
    index = read(empty, 0, model.tokenize("My favourite colour is", add_bos=False, special=True))
    plain = SamplerChain(model).penalties(64, 1.0, 0.0, 0.0).greedy()
    assert empty.sample(plain, index) == empty.sample(plain, index)
    penalised = SamplerChain(model).penalties(64, 1000.0, 0.0, 0.0).greedy()
    assert empty.sample(penalised, index) != empty.sample(penalised, index)
    plain.free()
    penalised.free()
    SamplerChain(model).free()  # an unused chain frees too


def test_a_freed_chain_is_not_sampled(model, empty):
    chain = SamplerChain(model).greedy()
    chain.free()
    chain.free()
    with pytest.raises(LlamaError, match="freed"):
        empty.sample(chain, 0)


# -- grammars --------------------------------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"colour": {"enum": ["red", "green"]}, "size": {"type": "integer"}},
          "required": ["colour", "size"], "additionalProperties": False}


def test_a_json_schema_grammar_gives_json_of_that_schema(model, empty):
    chain = SamplerChain(model).penalties(64, 1.05, 0.0, 0.0).grammar(Grammar.json_schema(SCHEMA)).greedy()
    text, ended = generate(model, empty, chain, chat(model, "Describe a small blue tent."))
    assert ended, f"no end of generation after {text!r}"
    reply = json.loads(text)
    assert set(reply) == {"colour", "size"} and reply["colour"] in ("red", "green") and type(reply["size"]) is int
    assert Grammar.json_schema(json.dumps(SCHEMA)) == Grammar.json_schema(SCHEMA)


def test_the_json_grammar_gives_json(model, empty):
    chain = SamplerChain(model).penalties(64, 1.05, 0.0, 0.0).grammar(Grammar.json()).greedy()
    text, ended = generate(model, empty, chain, chat(model, 'Write {"ok": true} and nothing else.'))
    assert ended, f"no end of generation after {text!r}"
    assert isinstance(json.loads(text), dict)


def test_a_gbnf_grammar_limits_the_reply_to_its_words(model, empty):
    chain = SamplerChain(model).grammar(Grammar.gbnf('root ::= "yes" | "no"')).greedy()
    text, ended = generate(model, empty, chain, chat(model, "Is the sky green?"), limit=5)
    assert ended and text in ("yes", "no")


def test_grammars_that_cannot_be_made_raise(model):
    with pytest.raises(GrammarError, match="nope"):
        Grammar.json_schema({"type": "object", "properties": {"a": {"$ref": "#/nope"}}})
    chain = SamplerChain(model)
    with pytest.raises(GrammarError):
        chain.grammar(Grammar.gbnf("root ::= (unclosed"))
    chain.free()
