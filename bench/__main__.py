"""Run every benchmark: `python -m bench` (or `make bench`); `python -m bench NAME` for one."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ["llm_http_overhead", "workflow_runner"]


def main(argv: list[str]) -> None:
    """Run the named benchmarks, or all of them."""
    for name in argv or BENCHMARKS:
        print(f"\n=== bench.{name} ===")
        importlib.import_module(f"bench.{name}").main()


if __name__ == "__main__":
    main(sys.argv[1:])
