"""Record Lab 4's prompt-techniques comparison: the reference brief sent five ways, on a few products.

    .venv/bin/python scripts/record_techniques.py                      # the built-in model, no key
    OPENAI_API_KEY=... .venv/bin/python scripts/record_techniques.py   # the active OpenAI model, for the cohort

The five ways and what each adds are marketlab.brief.techniques (words in
marketlab/reference/techniques.yaml). Products: the first product of each category, in turns, up to
--products. Every row says which model wrote it, through which backend, on which date and with
which settings; scores are Lab 3's default checks on the copy. The built-in model writes
datasets/recorded/lab04_prompt_techniques.csv; any other model lab04_prompt_techniques_<model>.csv.
No key, base URL or prompt text is written; replies are.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import date

import pandas as pd

from marketlab import data, llm
from marketlab.brief import techniques

MAX_TOKENS = 200


def products_in_turns(count: int) -> pd.DataFrame:
    """The first products of each category, taken one category at a time."""
    products = data.load("products")
    groups = [g.reset_index(drop=True) for _, g in products.groupby("category", sort=False)]
    picked = [g.iloc[i] for i in range(max(len(g) for g in groups)) for g in groups if i < len(g)]
    return pd.DataFrame(picked[:count]).reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=6, help="how many products (default 6)")
    args = parser.parse_args(argv)
    backend, model = llm.backend(), llm.model_name()
    chosen = products_in_turns(args.products)
    table = techniques.compare(chosen, llm.client(timeout=900, max_retries=0), model, max_tokens=MAX_TOKENS)
    table.insert(0, "source", "recorded")
    table.insert(1, "model", model)
    table.insert(2, "backend", backend.name)
    table.insert(3, "recorded_on", date.today().isoformat())
    table.insert(4, "temperature", 0.0)
    table.insert(5, "max_tokens", MAX_TOKENS)
    table.insert(8, "category", table["sku"].map(dict(zip(chosen["sku"], chosen["category"]))))
    name = techniques.RECORDED_FILE if backend.name == "local" else techniques.RECORDED_FILE.replace(
        ".csv", f"_{re.sub(r'[^A-Za-z0-9]+', '-', model)}.csv")
    path = data.datasets_dir() / "recorded" / name
    table.to_csv(path, index=False)
    print(f"Wrote {len(table)} rows to {path}.")
    print(techniques.summary(table).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
