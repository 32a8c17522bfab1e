"""Run every benchmark: `python -m bench` (or `make bench`); `python -m bench NAME` for one.

Options after the name go to that benchmark: `python -m bench course_autograde --learners 4`.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ["llm_http_overhead", "workflow_runner", "course_autograde", "evaluate_checks", "judge_runner",
              "batch_api", "serving", "engine", "evaluate_faithfulness", "flood"]


def main(argv: list[str]) -> None:
    """Run the named benchmarks, or all of them; arguments from the first option on are passed on."""
    first = next((i for i, arg in enumerate(argv) if arg.startswith("-")), len(argv))
    names, options = argv[:first], argv[first:]
    for name in names or BENCHMARKS:
        print(f"\n=== bench.{name} ===")
        module = importlib.import_module(f"bench.{name}")
        if options:
            module.main(options)
        else:
            module.main()


if __name__ == "__main__":
    main(sys.argv[1:])
