"""Record a run of the course's reference Lab 2 workflow over every product, for Lab 3's faithfulness lesson.

The reference workflow is what Lab 2's solution saves: the reference brief, the reference
build_messages, the ProductCopy schema (headline, description), the brief's word limits plus the
brand voice's banned words, and SETTINGS max_tokens=300. This script writes that workflow.py to a
temporary folder with marketlab's own template (or uses a saved one: --workflow PATH), imports it,
and calls its ``run(df, client, include=["sku", "name"])`` on every product of products.csv, a
few products at a time. Every row says which model wrote it, through which backend, on which date
and with which settings.

    .venv/bin/python scripts/record_lab02_run.py                 # the built-in model, no key
    OPENAI_API_KEY=... .venv/bin/python scripts/record_lab02_run.py   # the active OpenAI model

The built-in model writes datasets/recorded/lab02_workflow_run.csv; any other model writes
datasets/recorded/lab02_workflow_run_<model>.csv. A stopped run resumes from the `.partial` file
next to the output. No key, base URL or prompt text is written; replies are.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import ModuleType

import pandas as pd
from pydantic import BaseModel, Field
from tqdm import tqdm

from marketlab import data, llm, reference
from marketlab.workflow import Rules, load_workflow
from marketlab.workflow.artifact import workflow_source

RECORDED = data.datasets_dir() / "recorded"
BUILT_IN_TABLE = "lab02_workflow_run.csv"
INCLUDE = ["sku", "name"]
SERVICE_TROUBLE = ("timeout", "server_error", "connection", "rate_limit", "budget")
COLUMNS = ["source", "model", "backend", "recorded_on", "workflow", "temperature", "max_tokens", "seed", "workers",
           "request_timeout_s", "sku", "name", "headline", "description", "status", "error_kind", "error",
           "served_from", "calls", "prompt_tokens", "completion_tokens", "latency_s"]


class ProductCopy(BaseModel):
    """Web copy for one product."""

    headline: str = Field(description="one short line that names the product", max_length=60)
    description: str = Field(description="the web description, using only the facts given")


@dataclass(frozen=True)
class Settings:
    """How the recording runs: products per call of run(), and the overrides passed to it."""

    chunk: int = 10  # products per run() call; the partial file is written after each
    workers: int = 1  # the local server answers one request at a time; more workers only queue
    request_timeout_s: float = 600.0  # patient: a timed-out request keeps the busy local server working
    limit: int | None = None  # only the first N products (None: every product)


def reference_workflow(folder: Path) -> Path:
    """Write Lab 2's reference workflow.py (what the solution notebook saves) into folder."""
    brief = reference.load_brief()
    rules = Rules.from_brief(brief, "description").with_banned_words(data.load_brand_voice()["banned_words"])
    text = workflow_source(brief, reference.build_messages, ProductCopy, rules, {"workers": 4, "max_tokens": 300})
    path = folder / "workflow.py"
    path.write_text(text, encoding="utf-8")
    return path


def record_rows(module: ModuleType, client, chosen: llm.Backend, products: pd.DataFrame, settings: Settings,
                workflow_name: str) -> pd.DataFrame:
    """Run the workflow on these products and return one labelled row per product."""
    out = module.run(products, client, include=INCLUDE, workers=settings.workers,
                     request_timeout=settings.request_timeout_s, progress=False, show_summary=False)
    run_settings = module.SETTINGS
    labelled = pd.DataFrame({
        "source": "recorded", "model": chosen.model, "backend": chosen.name, "recorded_on": date.today().isoformat(),
        "workflow": workflow_name, "temperature": run_settings.temperature, "max_tokens": run_settings.max_tokens,
        "seed": run_settings.seed, "workers": settings.workers, "request_timeout_s": settings.request_timeout_s,
    }, index=out.index)
    table = pd.concat([labelled, out.rename(columns={"source": "served_from"})], axis=1)
    return table.reindex(columns=COLUMNS)


def record_run(module: ModuleType, client, chosen: llm.Backend, settings: Settings, workflow_name: str,
               partial: Path | None = None, done: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every product through the workflow, keeping rows already in `done` (so a stopped run resumes)."""
    products = data.load("products")
    if settings.limit is not None:
        products = products.head(settings.limit)
    done = done if done is not None else pd.DataFrame(columns=COLUMNS)
    # A row that failed because the service was busy (timeout, 5xx) is sent again; a reply that
    # broke the rules is a finished answer and is kept.
    finished = done[~done["error_kind"].isin(SERVICE_TROUBLE)]
    kept = finished.drop_duplicates("sku", keep="last").set_index("sku")
    todo = products[~products["sku"].isin(kept.index)]
    parts = [kept.reset_index().reindex(columns=COLUMNS)]
    with tqdm(total=len(products), initial=len(products) - len(todo), desc=f"Recording {chosen.model}",
              unit="product") as bar:
        for start in range(0, len(todo), settings.chunk):
            chunk = todo.iloc[start:start + settings.chunk]
            parts.append(record_rows(module, client, chosen, chunk, settings, workflow_name))
            if partial is not None:  # keep every finished chunk, to resume after a stop
                pd.concat(parts, ignore_index=True).to_csv(partial, index=False)
            bar.update(len(chunk))
    table = pd.concat(parts, ignore_index=True)
    order = {sku: i for i, sku in enumerate(products["sku"])}
    return table.sort_values("sku", key=lambda s: s.map(order)).reset_index(drop=True)


def default_out(backend: str, model: str) -> Path:
    """Where a recording goes: the built-in model's table, or one named after the model."""
    if backend == "local":
        return RECORDED / BUILT_IN_TABLE
    safe = "".join(c if c.isalnum() or c in "-._" else "-" for c in model)
    return RECORDED / f"lab02_workflow_run_{safe}.csv"


def main(argv: list[str] | None = None) -> int:
    """Command line: record, write the table, print what happened."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflow", type=Path, help="a saved workflow.py (default: Lab 2's reference workflow)")
    parser.add_argument("--products", type=int, help="only the first N products")
    parser.add_argument("--out", type=Path, help="output CSV (default: datasets/recorded/, named by model)")
    args = parser.parse_args(argv)
    chosen = llm.backend()
    out = args.out or default_out(chosen.name, chosen.model)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    done = pd.read_csv(partial, keep_default_na=False) if partial.exists() else None
    settings = Settings(limit=args.products)
    client = llm.client(timeout=settings.request_timeout_s, max_retries=0)
    with tempfile.TemporaryDirectory() as folder:
        path = args.workflow or reference_workflow(Path(folder))
        name = str(args.workflow) if args.workflow else "reference Lab 2 workflow"
        table = record_run(load_workflow(path), client, chosen, settings, name, partial, done)
    table.to_csv(out, index=False)
    partial.unlink(missing_ok=True)
    print(f"Wrote {len(table)} rows from {chosen.model} to {out}")
    print(table["status"].value_counts().to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
