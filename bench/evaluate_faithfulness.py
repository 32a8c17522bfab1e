"""How well faithfulness finds invented claims on shops it was not written for, and on the course's own data.

Figures, per shop (datasets/shops/*) and half (dev, heldback), and overall:
- text-level recall and precision of "has an unsupported claim" (an unchecked text is not flagged);
- claim-level recall: the share of labelled unsupported claims that a flagged claim overlaps;
- the share of texts unchecked (no claim recognised).
The shops are checked with no vocabulary pack (general claim forms only) unless --vocabulary says
otherwise; the course's rated outputs are checked as the course does, with the outdoor pack.

Targets on shops the rules were not written for: text recall >= 0.9, precision >= 0.85, claim recall
>= 0.8, unchecked <= 10%; on the course's data recall and precision >= 0.95.

    python -m bench evaluate_faithfulness                   # both halves
    python -m bench evaluate_faithfulness --split dev       # the half the rules were written on
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

SHOPS = Path(__file__).resolve().parent.parent / "datasets" / "shops"


@dataclass
class Tally:
    texts: int = 0
    labelled: int = 0
    flagged: int = 0
    true_pos: int = 0
    claims: int = 0
    caught: int = 0
    unchecked: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, other: "Tally") -> None:
        for name in ("texts", "labelled", "flagged", "true_pos", "claims", "caught", "unchecked"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def row(self, name: str) -> str:
        recall = self.true_pos / self.labelled if self.labelled else float("nan")
        precision = self.true_pos / self.flagged if self.flagged else float("nan")
        claim_recall = self.caught / self.claims if self.claims else float("nan")
        return (f"{name:<22} {self.texts:>5} {recall:>7.2f} {precision:>9.2f} {claim_recall:>8.2f} "
                f"{self.unchecked / max(self.texts, 1):>9.1%}")


def _spans(text: str, phrase: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(re.escape(phrase.lower()), text.lower())]


def score(texts, products, check) -> Tally:  # texts, products: pd.DataFrame
    """Run the check on every text and count against its labels."""
    rows = products.set_index("sku", drop=False)
    tally = Tally()
    for _, row in texts.iterrows():
        product = rows.loc[row["sku"]].to_dict()
        text = row["text"]
        labels = [c for c in str(row["unsupported_claims"] if row["unsupported_claims"] == row["unsupported_claims"]
                                 else "").split("|") if c]
        finding = check(text, product, row.get("channel", "web"))
        bad = [c for c in check.claims(text, product) if not c.supported]
        flagged = not finding.passed and not finding.unchecked
        tally.texts += 1
        tally.unchecked += finding.unchecked
        tally.labelled += bool(labels)
        tally.flagged += flagged
        tally.true_pos += bool(labels) and flagged
        for label in labels:
            tally.claims += 1
            hit = any(c.start < e and s < c.end for c in bad for s, e in _spans(text, label))
            tally.caught += hit
            if not hit:
                tally.misses.append(f"{row['output_id']}: missed {label!r}")
        if flagged and not labels:
            tally.misses.append(f"{row['output_id']}: false flag {finding.evidence}")
        if finding.unchecked:
            tally.misses.append(f"{row['output_id']}: unchecked")
    return tally


def course_figures():  # -> tuple[float, float, int]
    """Recall and precision on the course's rated outputs (outdoor pack, the course brand voice)."""
    from marketlab import data
    from marketlab.evaluate import check_quality, faithfulness, run_checks

    rated = data.load("rated_outputs")
    results = run_checks(rated, data.load("products"), [faithfulness()])
    quality = check_quality(results, rated, {"unsupported_claim": "faithfulness"}).iloc[0]
    return float(quality["recall"]), float(quality["precision"]), int(results["outcome"].eq("unchecked").sum())


def main(argv: list[str] | None = None) -> None:
    import pandas as pd

    from marketlab.evaluate import faithfulness

    parser = argparse.ArgumentParser(prog="python -m bench evaluate_faithfulness")
    parser.add_argument("--split", choices=["dev", "heldback", "both"], default="both")
    parser.add_argument("--vocabulary", default=None, help="a pack name or .yaml file for the shops (default: none)")
    parser.add_argument("--misses", action="store_true", help="list every missed claim and false flag")
    options = parser.parse_args(argv if argv is not None else [])
    check = faithfulness(vocabulary=options.vocabulary)
    halves = ["dev", "heldback"] if options.split == "both" else [options.split]
    print(f"faithfulness on other shops' copy, vocabulary={options.vocabulary!r}")
    print(f"{'shop / half':<22} {'texts':>5} {'recall':>7} {'precision':>9} {'claims':>8} {'unchecked':>9}")
    for half in halves:
        overall = Tally()
        for folder in sorted(p for p in SHOPS.iterdir() if (p / "texts.csv").is_file()):
            texts = pd.read_csv(folder / "texts.csv", keep_default_na=False)
            products = pd.read_csv(folder / "products.csv", keep_default_na=False)
            tally = score(texts[texts["split"] == half], products, check)
            overall.add(tally)
            print(tally.row(f"{folder.name} / {half}"))
            if options.misses:
                for line in tally.misses:
                    print("    " + line)
        print(overall.row(f"all shops / {half}"))
    recall, precision, unchecked = course_figures()
    print(f"course rated_outputs (outdoor pack): recall {recall:.2f}, precision {precision:.2f}, "
          f"{unchecked} unchecked")


if __name__ == "__main__":
    main(sys.argv[1:])
