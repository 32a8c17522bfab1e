"""Record Lab 1's before/after comparison on a real model, scored against the reference brief.

For each product in a fixed sample (the first N of every category) this sends two requests at
temperature 0: the one-line brief (instruction plus product name, as people type it into a chat)
and the engineered brief (the reference brief compiled with the product's facts). Every reply is
scored with the checks that exist in marketlab, against the brief's own acceptance criteria, and
written with the model's name and the date as one labelled row.

    .venv/bin/python scripts/record_replies.py                  # the built-in model, no key
    OPENAI_API_KEY=... .venv/bin/python scripts/record_replies.py   # the active OpenAI model
    .venv/bin/python scripts/record_replies.py --rescore        # new checks, same stored replies

The built-in model writes datasets/recorded/lab01_brief_comparison.csv; any other model writes
datasets/recorded/lab01_brief_comparison_<model>.csv, which Lab 1 shows next to it. No key, base
URL or prompt text is written; replies are.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import openai
import pandas as pd
from pydantic import BaseModel
from tqdm import tqdm

from marketlab import data, llm, reference
from marketlab.brief import Brief, split_list
from marketlab.checks.lab01 import invented_numbers, limit_conflicts, missing_facts
from marketlab.workflow import Rules

RECORDED = data.datasets_dir() / "recorded"
BUILT_IN_TABLE = "lab01_brief_comparison.csv"
ONE_LINE_BRIEF = "Write great product descriptions that make people want to buy."
COLUMNS = ["source", "model", "backend", "recorded_on", "temperature", "max_tokens", "sku", "name", "category",
           "brief", "reply", "finish_reason", "completion_tokens", "cut_off", "words", "within_word_limits",
           "names_product_and_first_spec", "banned_words", "has_banned_word", "broken_limits", "breaks_a_limit",
           "invented_numbers", "has_invented_number"]


@dataclass(frozen=True)
class Settings:
    """What one recording sends: how many products per category, and the request settings."""

    per_category: int = 3
    limit: int | None = None  # at most this many products (None: all that per_category gives)
    max_tokens: int = 300
    temperature: float = 0.0
    seed: int = 7
    partial: Path | None = None  # where replies are kept while recording, to resume after a stop


class Copy(BaseModel):
    """A reply as the one text field the word and banned-word rules read."""

    description: str


def sample_products(products: pd.DataFrame, per_category: int, limit: int | None = None) -> pd.DataFrame:
    """The first `per_category` products of every category, taken in turns (every category's first,
    then every category's second, ...), so that the first `limit` of them still cover every category."""
    rank = products.groupby("category", sort=False).cumcount()
    chosen = products[rank < per_category].assign(_rank=rank).sort_values("_rank", kind="stable")
    return chosen.drop(columns="_rank").head(limit).reset_index(drop=True)


def one_line_messages(record: Any) -> list[dict[str, str]]:
    """The one-line brief as Lab 1 sends it: the instruction plus the product name."""
    return [{"role": "user", "content": f"{ONE_LINE_BRIEF}\nProduct: {record['name']}"}]


def score(reply: str, record: Any, brief: Brief, banned_words: list[str]) -> dict[str, Any]:
    """One reply against the brief's acceptance criteria, with the checks marketlab has."""
    copy = Copy(description=reply)
    length_problems = Rules.from_brief(brief, "description").problems(copy, record)
    banned = [word for word in banned_words if Rules(banned_words=[word]).problems(copy, record)]
    missing = missing_facts(reply, record)
    first_spec = split_list(record["key_specs"])[0]
    conflicts = limit_conflicts(reply, record)
    invented = invented_numbers(reply, record)
    return {
        "words": len(reply.split()),
        "within_word_limits": not length_problems,
        "names_product_and_first_spec": "name" not in missing and f"key spec '{first_spec}'" not in missing,
        "banned_words": "; ".join(banned),
        "has_banned_word": bool(banned),
        "broken_limits": "; ".join(conflicts),
        "breaks_a_limit": bool(conflicts),
        "invented_numbers": "; ".join(invented),
        "has_invented_number": bool(invented),
    }


def record_run(client: openai.OpenAI, model: str, backend: str, settings: Settings,
               done: pd.DataFrame | None = None) -> pd.DataFrame:
    """Send both briefs for every sampled product and return one scored row per reply.

    Rows already in `done` (same product and brief) are kept, not sent again, so an interrupted
    recording resumes where it stopped.
    """
    brief = reference.load_brief()
    banned_words = data.load_brand_voice()["banned_words"]
    products = sample_products(data.load("products"), settings.per_category, settings.limit)
    kept = {(r["sku"], r["brief"]): r for r in (done.to_dict("records") if done is not None else [])}
    rows = []
    jobs = [(row, kind) for _, row in products.iterrows() for kind in ("one-line", "engineered")]
    for record, kind in tqdm(jobs, desc=f"Recording {model}", unit="reply"):
        if (record["sku"], kind) in kept:
            rows.append(kept[(record["sku"], kind)])
            continue
        messages = one_line_messages(record) if kind == "one-line" else brief.to_messages(record)
        response = client.chat.completions.create(model=model, messages=messages, max_tokens=settings.max_tokens,
                                                  temperature=settings.temperature, seed=settings.seed)
        choice = response.choices[0]
        reply = (choice.message.content or "").strip()
        rows.append({
            "source": "recorded", "model": model, "backend": backend, "recorded_on": date.today().isoformat(),
            "temperature": settings.temperature, "max_tokens": settings.max_tokens, "sku": record["sku"],
            "name": record["name"], "category": record["category"], "brief": kind, "reply": reply,
            "finish_reason": choice.finish_reason, "completion_tokens": response.usage.completion_tokens,
            "cut_off": choice.finish_reason == "length", **score(reply, record, brief, banned_words),
        })
        if settings.partial is not None:  # keep every reply as it arrives
            pd.DataFrame(rows, columns=COLUMNS).to_csv(settings.partial, index=False)
    return pd.DataFrame(rows, columns=COLUMNS)


def rescore(path: Path) -> pd.DataFrame:
    """The stored replies of a recording scored again with the current checks: no model is called and no
    reply changes; only the score columns are recomputed."""
    table = pd.read_csv(path, keep_default_na=False)
    brief = reference.load_brief()
    banned_words = data.load_brand_voice()["banned_words"]
    products = data.load("products").set_index("sku", drop=False)
    scores = [score(row["reply"], products.loc[row["sku"]].to_dict(), brief, banned_words)
              for _, row in table.iterrows()]
    for column in scores[0] if scores else []:
        table[column] = [s[column] for s in scores]
    return table


def default_out(backend: str, model: str) -> Path:
    """Where a recording goes: the built-in model's table, or one named after the model."""
    if backend == "local":
        return RECORDED / BUILT_IN_TABLE
    safe = "".join(c if c.isalnum() or c in "-._" else "-" for c in model)
    return RECORDED / f"lab01_brief_comparison_{safe}.csv"


def main(argv: list[str] | None = None) -> int:
    """Command line: record, write the table, print the summary Lab 1 shows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-category", type=int, default=Settings.per_category,
                        help="products per category (8 categories; default 3, so 24 products)")
    parser.add_argument("--products", type=int, help="at most this many products, every category kept")
    parser.add_argument("--max-tokens", type=int, default=Settings.max_tokens)
    parser.add_argument("--out", type=Path, help="output CSV (default: datasets/recorded/, named by model)")
    parser.add_argument("--rescore", action="store_true",
                        help="score the stored replies again with the current checks; no model is called")
    args = parser.parse_args(argv)
    chosen = llm.backend()
    out = args.out or default_out(chosen.name, chosen.model)
    if args.rescore:
        rescore(out).to_csv(out, index=False)
        print(f"Scored the replies in {out} again with the current checks (no model calls).")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    settings = Settings(per_category=args.per_category, limit=args.products, max_tokens=args.max_tokens,
                        partial=partial)
    done = pd.read_csv(partial, keep_default_na=False) if partial.exists() else None
    # One patient attempt per reply: a retry after a timeout would leave the abandoned request
    # running on a busy local server and slow every later one.
    client = llm.client(timeout=900.0, max_retries=0)
    table = record_run(client, chosen.model, chosen.name, settings, done)
    table.to_csv(out, index=False)
    partial.unlink(missing_ok=True)
    summary = table.groupby("brief", sort=False)[
        ["cut_off", "within_word_limits", "names_product_and_first_spec", "has_banned_word", "breaks_a_limit",
         "has_invented_number"]].sum()
    print(f"Wrote {len(table)} replies ({table['sku'].nunique()} products) from {chosen.model} to {out}")
    print(summary.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
