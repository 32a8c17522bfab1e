"""Rebuild every synthetic dataset and the graders' holdouts from fixed seeds.

Usage (from the repository root)::

    python -m datasets.build              # writes datasets/ and graders/holdout/
    python -m datasets.build --check      # rebuilds into a temp dir and compares bytes

Output is byte-identical on every run: fixed seeds, fixed row order, fixed float
formatting, Unix newlines, and no "now" timestamps anywhere.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

from .generate import brand_voice, campaign, leads, products, proposals, rated_outputs, reviews
from .generate.common import HALCYON, RIDGELINE, Company, write_csv, write_text

REPO = Path(__file__).resolve().parent.parent
DATASETS_DIR = REPO / "datasets"
HOLDOUT_DIR = REPO / "graders" / "holdout"

# Learner-facing campaign series: the customer mix starts shifting in week index 56 (2024-01-29).
CAMPAIGN_START = "2023-01-02"
CAMPAIGN_SHIFT_WEEK = 56
# Holdout series: different start, different shift week, and one series with no shift.
HOLDOUT_CAMPAIGN_START = "2021-01-04"
HOLDOUT_SHIFT_WEEK = 34


def _proposal_files(company: Company, out: Path) -> list[Path]:
    written = [write_text(p["body"], out / "proposals" / f"{p['file']}.md") for p in proposals.proposals_for(company)]
    written.append(write_csv(proposals.scorecard(company), out / "proposals" / "scorecard.csv"))
    return written


def build_learner(out_dir: Path) -> list[Path]:
    """Write the learner-facing datasets for Ridgeline Outfitters into ``out_dir``."""
    out = Path(out_dir)
    co = RIDGELINE
    voice = brand_voice.parse(co)
    prods = products.generate(co, 150)
    written = [
        write_csv(prods, out / "products.csv"),
        write_text(brand_voice.render(co), out / "brand_voice.yaml"),
        write_csv(reviews.generate(co, prods, 600), out / "reviews.csv"),
        write_csv(leads.generate(co, 2000), out / "leads.csv"),
        write_csv(campaign.generate(co.seed + 11, CAMPAIGN_START, shift_week=CAMPAIGN_SHIFT_WEEK),
                  out / "campaign_weekly.csv"),
        # The same engine where the audience never changed: what "no alert" must look like in Lab 4.
        write_csv(campaign.generate(co.seed + 13, CAMPAIGN_START, shift_week=None),
                  out / "campaign_weekly_stable.csv"),
        write_csv(rated_outputs.generate(co, prods, voice, 200), out / "rated_outputs.csv"),
    ]
    return written + _proposal_files(co, out)


def build_holdout(holdout_dir: Path) -> list[Path]:
    """Write instructor-only holdouts (Halcyon Expeditions, other seeds) into ``holdout_dir``."""
    out = Path(holdout_dir)
    co = HALCYON
    voice = brand_voice.parse(co)
    prods = products.generate(co, 40)
    written = [
        write_csv(prods, out / "products.csv"),
        write_text(brand_voice.render(co), out / "brand_voice.yaml"),
        write_csv(rated_outputs.generate(co, prods, voice, 60), out / "rated_outputs.csv"),
        # Tables the capstone's packaged workflow has never seen, for each kind of workflow it may be.
        write_csv(reviews.generate(co, prods, 80), out / "reviews.csv"),
        write_csv(leads.generate(co, 120), out / "leads.csv"),
        write_csv(campaign.generate(co.seed + 11, HOLDOUT_CAMPAIGN_START, shift_week=HOLDOUT_SHIFT_WEEK,
                                    base_impressions=92_000, growth=0.8),
                  out / "campaign_weekly_degrading.csv"),
        write_csv(campaign.generate(co.seed + 13, HOLDOUT_CAMPAIGN_START, shift_week=None,
                                    base_impressions=92_000, growth=0.8),
                  out / "campaign_weekly_stable.csv"),
    ]
    return written + _proposal_files(co, out)


def build(out_dir: Path | str = DATASETS_DIR, holdout_dir: Path | str = HOLDOUT_DIR) -> list[Path]:
    """Build learner data into ``out_dir`` and holdouts into ``holdout_dir``; return written paths."""
    return build_learner(Path(out_dir)) + build_holdout(Path(holdout_dir))


def check() -> list[str]:
    """Rebuild into a temp dir and return the committed files that differ (empty list = identical)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp_out, tmp_hold = Path(tmp) / "datasets", Path(tmp) / "holdout"
        fresh = build(tmp_out, tmp_hold)
        bad = []
        for path in fresh:
            base, target = (tmp_out, DATASETS_DIR) if tmp_out in path.parents else (tmp_hold, HOLDOUT_DIR)
            committed = target / path.relative_to(base)
            if not committed.exists() or not filecmp.cmp(path, committed, shallow=False):
                bad.append(str(committed.relative_to(REPO)))
        return bad


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare a fresh build with the committed files")
    args = parser.parse_args(argv)
    if args.check:
        bad = check()
        for b in bad:
            print(f"differs from a fresh build: {b}")
        print("OK: committed data matches the generator" if not bad else "Run `python -m datasets.build` to refresh.")
        return 1 if bad else 0
    paths = build()
    for p in paths:
        print(p.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
