"""The course's own prompts put what every request shares (system message, brief, rubric) before the row's data.

The built-in model reuses the start of a prompt that an earlier prompt shared, block by block from
the first token (marketlab/llm/prefix_cache.py): text shared by every row but placed after the row's
data is read again for every row. For each builder that a lab or take-home workflow calls once per
row, two rows' prompts are compared as the model reads them (messages in order): every shared part
(system message, brief, rubric, schema instruction) must lie before the point where they first differ.
A row's own framing (a "Limits of this product" heading, the task sentence naming the product, last
where a small model looks) is part of the row and may come after.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from marketlab import data, reference


def _flat(messages: list[dict[str, str]]) -> str:
    """The messages in the order the model reads them, as the chat template lays them out."""
    return "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages)


def _assert_shared_part_first(first: list[dict[str, str]], second: list[dict[str, str]], *shared: str) -> None:
    """Each shared text is in both prompts, wholly before the first character where they differ."""
    a, b = _flat(first), _flat(second)
    assert a != b, "the two rows gave the same prompt: the test would prove nothing"
    differ = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    for part in shared:
        at = a.find(part)
        assert at != -1 and part in b, f"not sent with every row: {part[:80]!r}"
        assert at + len(part) <= differ, (f"shared by every row but sent after the row's data starts (character "
                                          f"{differ}): {part[:80]!r}")


def _products() -> list[dict[str, Any]]:
    products = data.load("products")
    return [products.iloc[i].to_dict() for i in (0, 5)]


def test_lab_2_product_copy_puts_the_brief_before_the_product():
    brief = reference.load_brief()
    one, two = (reference.build_messages(brief, row) for row in _products())
    _assert_shared_part_first(one, two, brief.system_prompt())


def test_the_judge_puts_the_rubric_before_the_text():
    from marketlab.evaluate.rubric import tone_rubric

    rubric = tone_rubric()
    texts = ("Stay dry on the trail with the Moraine pack.", "A warm bag for cold nights at camp.")
    points = rubric.prompt(texts[0])[1]["content"].split('Text:')[0]  # the rubric and the scale
    assert rubric.criteria[0] in points
    _assert_shared_part_first(rubric.prompt(texts[0]), rubric.prompt(texts[1]), rubric.system, points)
    others = ("Pack light, pack right.", "Cook anywhere with the Ember stove.")
    pairs = (rubric.pairwise_prompt(*texts), rubric.pairwise_prompt(*others))
    _assert_shared_part_first(*pairs, rubric.system, points.split("Score 1 to 5")[0])


def test_the_claim_verifier_puts_its_instructions_before_the_product():
    from marketlab.evaluate import verify

    one, two = (verify.messages("Light and warm.", row) for row in _products())
    _assert_shared_part_first(one, two, verify.SYSTEM)


def test_proposal_extraction_puts_its_rules_before_the_question_and_proposal():
    from marketlab.commission.extract import EXTRACTION_RULES, extraction_messages

    records = [{"question_text": "Which model do you use?", "vendor": "Acme", "text": "We use our own model."},
               {"question_text": "What does it cost?", "vendor": "Birch", "text": "It costs 2 cents a call."}]
    one, two = (extraction_messages(record) for record in records)
    _assert_shared_part_first(one, two, EXTRACTION_RULES)


class _Copy(BaseModel):
    headline: str
    body: str


def test_run_batch_sends_the_brief_and_its_schema_instruction_before_the_row():
    import pandas as pd

    from marketlab.llm.testing import ScriptedEndpoint
    from marketlab.workflow import run_batch
    from marketlab.workflow.runner import schema_instruction

    endpoint = ScriptedEndpoint()
    brief = reference.load_brief()
    run_batch(pd.DataFrame(_products()), reference.build_messages, _Copy, endpoint.client(), "scripted", brief=brief,
              show_summary=False)
    one, two = (request["messages"] for request in endpoint.requests[:2])
    _assert_shared_part_first(one, two, brief.system_prompt(), schema_instruction(_Copy.model_json_schema()))
