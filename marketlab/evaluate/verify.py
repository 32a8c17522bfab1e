"""A second opinion on faithfulness from a capable model: each claim judged against the product's facts.

The rule check (faithfulness) needs no model and runs anywhere; it only knows the claim shapes and
words it was given. Where a team has a capable model behind a key, a model can read claims the rules
do not recognise. It is optional, never needed offline, and only worth trusting once its agreement
with people has been measured:

    from marketlab import data, evaluate
    verdicts = evaluate.verify_claims(outputs, products)          # through the runner: cached, budgeted
    rules = evaluate.run_checks(outputs, products, [evaluate.faithfulness(vocabulary=None)])
    evaluate.verifier_agreement(verdicts, rules, labels)          # agreement and kappa, three ways

Every row records the model, a short id of the prompt and the verifier's version. A row the model
could not answer has verifier_unsupported NA and says why: it never counts as passed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

import openai
import pandas as pd
from pydantic import BaseModel, Field

from marketlab.tables import is_missing

from .errors import EvaluateInputError
from .rubric import _client_and_model, _run, _texts
from .suite import product_lookup

VERIFIER_VERSION = "1"
CLAIM_CHARS = 80
MAX_CLAIMS = 8
VERIFIER_DEFAULTS: dict[str, Any] = {"max_tokens": 400}
FACT_FIELDS = ("name", "category", "materials", "key_specs", "certifications", "not_true", "price_usd", "weight_g")
SYSTEM = ("You check product copy against the product's facts. List each claim the copy makes that a customer "
          "could check (a number, a material, a feature, a certification, who or what it is for). For each, "
          "answer 'supported' when the facts say it, 'contradicted' when the facts or the 'not true' list say "
          "the opposite, and 'not_in_facts' when the facts do not say it. Opinion words are not claims. "
          "Reply in JSON only.")
PROMPT_ID = hashlib.sha256(f"{VERIFIER_VERSION}\n{SYSTEM}".encode()).hexdigest()[:12]


class ClaimCheck(BaseModel):
    """One claim the model found, with its verdict."""

    claim: str = Field(description="the claim, in the copy's own words", max_length=CLAIM_CHARS)
    verdict: Literal["supported", "contradicted", "not_in_facts"]


class ClaimVerdicts(BaseModel):
    """The verifier's structured reply for one text."""

    claims: list[ClaimCheck] = Field(description="every checkable claim in the copy", max_length=MAX_CLAIMS)


def facts_block(product: Mapping[str, Any]) -> str:
    """The product's facts as the verifier reads them: one 'field: value' line per filled field."""
    lines = []
    for name in FACT_FIELDS:
        value = product.get(name)
        if value is None or is_missing(value) or str(value).strip() == "":
            continue
        label = "not true" if name == "not_true" else name.replace("_", " ")
        lines.append(f"{label}: {value}")
    return "\n".join(lines)


def messages(text: str, product: Mapping[str, Any]) -> list[dict[str, str]]:
    """The request for one text: the instructions, then the facts and the copy, clearly apart."""
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Product facts:\n{facts_block(product)}\n\nCopy:\n<<<\n{text}\n>>>"}]


def verify_claims(outputs: pd.DataFrame, products: pd.DataFrame, client: openai.OpenAI | None = None,
                  model: str | None = None, *, text: str = "text", **run_options: Any) -> pd.DataFrame:
    """Ask a model to judge every claim of every text against its product's facts; one row per text.

    Runs through marketlab.workflow.run_batch (cached, budgeted, retried); run_options go to it.
    verifier_unsupported is True when any claim is contradicted or not in the facts, False when every
    claim is supported, NA when the model found no claim or gave no usable answer (never a pass).
    """
    cells = _texts(outputs, text, "outputs")
    if "sku" not in outputs.columns:
        raise EvaluateInputError("The outputs table has no 'sku' column, so its texts cannot be matched to products.",
                                 "Add the product's sku to every row.")
    lookup = product_lookup(products, outputs["sku"])
    prompts = [messages(c, lookup[str(sku)]) if c is not None else None
               for c, sku in zip(cells, outputs["sku"].astype(str))]
    client, model = _client_and_model(client, model)
    answers = _run(prompts, ClaimVerdicts, client, model, {**VERIFIER_DEFAULTS, **run_options})
    found, unsupported = [], []
    for fields in answers.fields:
        claims = [] if fields is None else [dict(c) if not isinstance(c, dict) else c for c in fields["claims"]]
        found.append(json.dumps(claims))
        if fields is None or not claims:
            unsupported.append(pd.NA)
        else:
            unsupported.append(any(c["verdict"] != "supported" for c in claims))
    index = outputs.index
    meta = answers.meta(index)
    return pd.DataFrame({
        "verifier_unsupported": pd.Series(unsupported, index=index, dtype="boolean"),
        "verifier_claims": pd.Series(found, index=index, dtype="string"),
        "verifier_status": meta["judge_status"], "verifier_error": meta["judge_error"],
        "verifier_calls": meta["judge_calls"],
        "verifier_model": model, "verifier_prompt": PROMPT_ID, "verifier_version": VERIFIER_VERSION,
    }, index=index)


def verifier_agreement(verdicts: pd.DataFrame, rule_results: pd.DataFrame, labels: pd.DataFrame | None = None, *,
                       check: str = "faithfulness", label: str = "unsupported_claim") -> pd.DataFrame:
    """Agreement and Cohen's kappa on "has an unsupported claim": the verifier against the rule check, and each
    against people's labels when given. A text the rule check left unchecked, or the verifier could not answer,
    is left out of that pair (its n says how many remained)."""
    from .calibrate import calibrate

    for table, what in ((verdicts, "verdicts"), (rule_results, "rule_results")):
        if not isinstance(table, pd.DataFrame) or len(table) != len(verdicts):
            raise EvaluateInputError(f"{what} is not a table with one row per text.",
                                     "Pass verify_claims(...)'s result and run_checks(...)'s, on the same texts.")
    if check not in rule_results.columns:
        raise EvaluateInputError(f"rule_results has no '{check}' column.", "Run run_checks with that check.")
    index = verdicts.index
    model = verdicts["verifier_unsupported"].astype("boolean").set_axis(index)
    rules = (~rule_results[check].astype(bool)).astype("boolean").set_axis(index)
    if "unchecked" in rule_results.columns:
        rules[rule_results["unchecked"].astype(str).str.contains(check).to_numpy()] = pd.NA
    pairs = [("verifier vs rule check", model, rules)]
    if labels is not None:
        if label not in labels.columns or len(labels) != len(verdicts):
            raise EvaluateInputError(f"labels has no '{label}' column for every text.",
                                     "Pass the labelled table the texts came from, in the same order.")
        people = labels[label].astype("boolean").set_axis(index)
        pairs += [("verifier vs people", model, people), ("rule check vs people", rules, people)]
    rows = []
    for name, predicted, truth in pairs:
        result = calibrate(predicted, truth)
        rows.append({"pair": name, "n": result.n, "agreement": result.agreement, "kappa": result.kappa})
    return pd.DataFrame(rows)
