"""The deterministic checks and faithfulness over 10,000 texts.

Figures, measured in one run:
- each default check on its own, in microseconds per text;
- all default checks together (faithfulness included) through run_checks, in texts per second and
  milliseconds per 1,000 texts, against the target: the catalogue's weekly run checked in under a
  second per 1,000 texts (so at least 1,000 texts per second);
- the same run on the repeated texts, where the number readings are cached, beside the unique ones.

The texts are rated_outputs.csv repeated and shuffled to 10,000 rows; a row number is added to
each so that every text is different, as in a real weekly run.
"""

from __future__ import annotations

import argparse
import sys
import time

TEXTS = 10_000
TARGET_MS_PER_1000 = 1000.0


def _texts(n: int, unique: bool):  # -> pd.DataFrame
    import pandas as pd

    from marketlab import data

    rated = data.load("rated_outputs")
    table = pd.concat([rated] * (n // len(rated) + 1), ignore_index=True).head(n)
    table = table.sample(frac=1.0, random_state=7).reset_index(drop=True)
    if unique:
        table["text"] = [f"{text} Ref {i}." for i, text in enumerate(table["text"])]
    return table


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    """Time each check, then all of them, on 10,000 texts, and print the figures against the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=TEXTS)
    args = parser.parse_args(argv or [])
    from marketlab import data
    from marketlab.evaluate.suite import DEFAULT_CHECKS, run_checks

    products = data.load("products")
    texts = _texts(args.texts, unique=True)
    run_checks(texts.head(300), products)  # read every product's facts once, as any run does first
    n = len(texts)
    print(f"{n:,} texts (rated_outputs.csv repeated and shuffled, each made unique), {len(products)} products")
    per_check = {}
    for check in DEFAULT_CHECKS:
        per_check[check.name] = _timed(lambda c=check: run_checks(texts, products, [c]))
        print(f"  {check.name:<16}: {per_check[check.name] / n * 1e6:7.1f} us per text")
    cpu_started = time.process_time()
    total_s = _timed(lambda: run_checks(texts, products))
    cpu_s = time.process_time() - cpu_started
    ms_per_1000 = total_s / n * 1000 * 1000
    print(f"all {len(DEFAULT_CHECKS)} default checks : {total_s:6.2f} s for {n:,} texts = {n / total_s:8,.0f} texts "
          f"per second, {ms_per_1000:6.1f} ms per 1,000 texts (target < {TARGET_MS_PER_1000:.0f} ms)")
    print(f"  target / measured            : {TARGET_MS_PER_1000 / ms_per_1000:6.2f}x  (>= 1 meets the target); "
          f"{cpu_s:.2f} s of it on this process's CPU")
    repeated = _texts(args.texts, unique=False)
    run_checks(repeated, products)
    again_s = _timed(lambda: run_checks(repeated, products))
    print(f"repeated texts (cached reads)  : {again_s:6.2f} s for {n:,} texts, {again_s / n * 1e6:6.1f} us per text; "
          f"unique / repeated = {total_s / again_s:4.2f}x")


if __name__ == "__main__":
    main(sys.argv[1:])
