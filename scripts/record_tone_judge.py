"""Record the tone judge on a real model, against the human wrong_tone labels of rated_outputs.csv.

A seeded sample of rated_outputs.csv (60 texts by default) goes through
``marketlab.evaluate.judge`` with the course's tone rubric (TONE_RUBRIC, built from
brand_voice.yaml), one request at a time at temperature 0, through the batch runner (so an
interrupted recording resumes from its checkpoint and cache). Every row keeps the human label next
to the judge's verdict and says which model judged it, through which backend, on which date, with
which rubric version and prompt id. The script then prints the calibration Lab 3 quotes:
agreement, Cohen's kappa and the always-pass and majority baselines.

    .venv/bin/python scripts/record_tone_judge.py                  # the built-in model, no key
    OPENAI_API_KEY=... .venv/bin/python scripts/record_tone_judge.py   # the active OpenAI model

The built-in model writes datasets/recorded/lab03_tone_judge.csv; any other model writes
datasets/recorded/lab03_tone_judge_<model>.csv. No key, base URL or prompt text is written.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from marketlab import data, llm
from marketlab.evaluate.calibrate import Calibration, calibrate
from marketlab.evaluate.rubric import JUDGE_DEFAULTS, Rubric, judge, tone_rubric

RECORDED = data.datasets_dir() / "recorded"
BUILT_IN_TABLE = "lab03_tone_judge.csv"
LABEL = "wrong_tone"
COLUMNS = ["source", "judge_model", "backend", "recorded_on", "rubric_name", "rubric_version", "judge_prompt",
           "temperature", "max_tokens", "output_id", "sku", "channel", "prompt_version", "text", LABEL,
           "judge_score", "judge_pass", "judge_consistent", "judge_findings", "judge_reason", "judge_status",
           "judge_error"]


@dataclass(frozen=True)
class Settings:
    """What one recording sends: how many texts, the sample's seed, and the request settings."""

    texts: int = 60
    seed: int = 3
    max_tokens: int = int(JUDGE_DEFAULTS["max_tokens"])
    temperature: float = 0.0
    # A long limit and no retry after a timeout: an abandoned request keeps the local server busy.
    request_timeout: float = 900.0


def sample_texts(rated: pd.DataFrame, texts: int, seed: int) -> pd.DataFrame:
    """A seeded simple random sample of the rated outputs, in output_id order (the base rate is kept)."""
    return rated.sample(min(texts, len(rated)), random_state=seed).sort_values("output_id").reset_index(drop=True)


def record_run(rubric: Rubric, model: str, backend: str, settings: Settings) -> pd.DataFrame:
    """Judge the sample and return one labelled row per text, human label beside the judge's verdict."""
    sample = sample_texts(data.load("rated_outputs"), settings.texts, settings.seed)
    verdicts = judge(sample, rubric, llm.client(timeout=settings.request_timeout, max_retries=0), model,
                     workers=1, max_tokens=settings.max_tokens, temperature=settings.temperature,
                     request_timeout=settings.request_timeout, retry={"max_attempts": 2}, show_summary=True)
    table = pd.concat([sample[["output_id", "sku", "channel", "prompt_version", "text", LABEL]], verdicts], axis=1)
    table.insert(0, "source", "recorded")
    table.insert(1, "backend", backend)
    table.insert(2, "recorded_on", date.today().isoformat())
    table["temperature"], table["max_tokens"] = settings.temperature, settings.max_tokens
    return table[COLUMNS]


def calibration(table: pd.DataFrame) -> Calibration:
    """The judge's pass/fail against the people's: on tone is the opposite of the wrong_tone defect."""
    return calibrate(table["judge_pass"].astype("boolean"), ~table[LABEL].astype(bool), texts=table["text"])


def default_out(backend: str, model: str) -> Path:
    """Where a recording goes: the built-in model's table, or one named after the model."""
    if backend == "local":
        return RECORDED / BUILT_IN_TABLE
    safe = "".join(c if c.isalnum() or c in "-._" else "-" for c in model)
    return RECORDED / f"lab03_tone_judge_{safe}.csv"


def main(argv: list[str] | None = None) -> int:
    """Command line: record, write the table, print the calibration Lab 3 shows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=Settings.texts, help="how many rated texts (default 60)")
    parser.add_argument("--seed", type=int, default=Settings.seed, help="seed of the sample (default 3)")
    parser.add_argument("--out", type=Path, help="output CSV (default: datasets/recorded/, named by model)")
    args = parser.parse_args(argv)
    chosen = llm.backend()
    out = args.out or default_out(chosen.name, chosen.model)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = record_run(tone_rubric(), chosen.model, chosen.name, Settings(texts=args.texts, seed=args.seed))
    table.to_csv(out, index=False)
    print(f"Wrote {len(table)} verdicts from {chosen.model} to {out}")
    print(table["judge_status"].value_counts().to_string())
    print(calibration(table))
    print(calibration(table).confusion.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
