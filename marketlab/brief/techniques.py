"""Prompt techniques, measured: the same brief sent five ways, each reply scored with Lab 3's checks.

    from marketlab.brief import techniques
    table = techniques.compare(products.head(2), client, model)        # one row per product and technique
    techniques.summary(table)                                           # pass rate per check and technique

The five ways: the brief alone (baseline), with examples (few-shot), with a role, with structure,
and with reasoning first. What each adds is data (marketlab/reference/techniques.yaml); the checks
are marketlab.evaluate's defaults, the ones Lab 3 calibrated. A reply's copy is the text after the
technique's marker line, if it asks for one ("Description:"), so the notes before it are not scored.
"""

from __future__ import annotations

import time
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import MarketlabError
from .messages import Message
from .schema import Brief

TECHNIQUES_FILE = Path(__file__).resolve().parent.parent / "reference" / "techniques.yaml"
TECHNIQUES = ("baseline", "examples", "role", "structure", "reasoning")
RECORDED_FILE = "lab04_prompt_techniques.csv"  # in datasets/recorded/, written by scripts/record_techniques.py


def load_techniques(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """What each technique adds (marketlab/reference/techniques.yaml by default)."""
    import yaml

    return yaml.safe_load(Path(path or TECHNIQUES_FILE).read_text(encoding="utf-8"))


def example_pairs(products: pd.DataFrame, count: int, skip: AbstractSet[str] = frozenset()) -> list[tuple[dict, str]]:
    """(product, description) pairs people rated 5 with no defect, web channel, not for the skus in `skip`."""
    from marketlab import data

    rated = data.load("rated_outputs")
    defects = [c for c in ("unsupported_claim", "banned_word", "over_length", "missing_required_fact",
                           "wrong_tone", "repetition") if c in rated.columns]
    good = rated[(rated["human_rating"] == 5) & (rated["channel"] == "web") & ~rated[defects].any(axis=1)
                 & ~rated["sku"].astype(str).isin(skip)]
    by_sku = {str(r["sku"]): r for r in products.to_dict("records")}
    pairs = [(by_sku[str(row.sku)], str(row.text)) for row in good.itertuples() if str(row.sku) in by_sku]
    return pairs[:count]


def messages(technique: str, brief: Brief, record: Any, products: pd.DataFrame,
             words: dict[str, dict[str, Any]] | None = None) -> list[Message]:
    """The chat messages of one technique for one product."""
    words = words or load_techniques()
    if technique not in TECHNIQUES:
        raise MarketlabError(f"{technique!r} is not one of the techniques.", f"Use one of: {', '.join(TECHNIQUES)}.")
    spec = words[technique]
    sku = str(dict(record).get("sku", ""))
    examples = example_pairs(products, int(spec.get("count", 2)), {sku}) if technique == "examples" else None
    sent = brief.to_messages(record, examples)
    if technique == "role":
        sent[0] = {"role": "system", "content": f"{spec['text']}\n{sent[0]['content']}"}
    elif technique in ("structure", "reasoning"):
        sent[-1] = {"role": "user", "content": f"{sent[-1]['content']}\n\n{spec['text']}"}
    return sent


def final_copy(reply: str, technique: str, words: dict[str, dict[str, Any]] | None = None) -> str:
    """The copy in a reply: for reasoning first, what follows its marker (the whole reply if it has none)."""
    marker = (words or load_techniques())[technique].get("final_marker")
    if technique == "reasoning" and marker and marker.lower() in reply.lower():
        return reply[reply.lower().rindex(marker.lower()) + len(marker):].strip()
    return reply.strip()


def compare(products_subset: pd.DataFrame, client: Any, model: str, *, techniques: tuple[str, ...] = TECHNIQUES,
            max_tokens: int = 200, brief: Brief | None = None, products: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each technique on each product: the reply, its copy and Lab 3's checks on the copy (one row each)."""
    from marketlab import data, reference

    brief = brief or reference.load_brief()
    products = products if products is not None else data.load("products")
    words = load_techniques()
    rows = []
    for record in products_subset.to_dict("records"):
        for technique in techniques:
            started = time.perf_counter()
            reply = client.chat.completions.create(model=model, messages=messages(technique, brief, record, products,
                                                                                 words),
                                                   max_tokens=max_tokens, temperature=0)
            content = reply.choices[0].message.content or ""
            rows.append({"sku": record["sku"], "name": record["name"], "technique": technique,
                         "label": words[technique]["label"], "channel": "web", "reply": content,
                         "text": final_copy(content, technique, words),
                         "finish_reason": reply.choices[0].finish_reason,
                         "seconds": round(time.perf_counter() - started, 1)})
    return score(pd.DataFrame(rows), products)


def score(table: pd.DataFrame, products: pd.DataFrame) -> pd.DataFrame:
    """Lab 3's default checks on each row's `text` (the copy), beside the row."""
    from marketlab.evaluate import run_checks

    checked = run_checks(table, products, text="text")
    names = [c for c in checked.columns if c not in table.columns and c not in ("passed", "outcome", "unchecked",
                                                                                  "reason")]
    out = table.reset_index(drop=True).copy()
    for column in [*names, "outcome", "reason"]:
        out[column] = checked[column].to_numpy()
    out.attrs["checks"] = names
    return out


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per technique: how many replies, the share passing each check, and the share passing every one."""
    checks = table.attrs.get("checks") or [c for c in ("length", "banned_words", "required_facts", "faithfulness",
                                                       "repetition", "hype", "disclaimers") if c in table.columns]
    grouped = table.groupby("technique", sort=False)
    out = grouped[checks].mean().mul(100).round(0)
    out.insert(0, "replies", grouped.size())
    out["every check"] = grouped["outcome"].apply(lambda s: (s == "passed").mean() * 100).round(0)
    return out.reindex([t for t in TECHNIQUES if t in out.index])


def followed(table: pd.DataFrame, products: pd.DataFrame | None = None, *, run: int = 6) -> pd.DataFrame:
    """Per technique: replies cut off at the token limit, replies in the asked format (structure and
    reasoning first: the marker line is there) and replies that copy a run of `run` words from an example."""
    from marketlab import data

    products = products if products is not None else data.load("products")
    words = load_techniques()

    def copies(row: pd.Series) -> bool:
        said = " ".join(str(row["reply"]).lower().split())
        for _, example in example_pairs(products, int(words["examples"].get("count", 2)), {str(row["sku"])}):
            tokens = example.lower().split()
            if any(" ".join(tokens[i:i + run]) in said for i in range(len(tokens) - run + 1)):
                return True
        return False

    rows = []
    for technique, group in table.groupby("technique", sort=False):
        marker = words[technique].get("final_marker")
        rows.append({"technique": technique, "replies": len(group),
                     "cut off at the token limit": int((group["finish_reason"] == "length").sum()),
                     "in the asked format": (int(group["reply"].str.contains(marker, case=False, regex=False).sum())
                                             if marker else ""),
                     "copy an example": int(group.apply(copies, axis=1).sum()) if technique == "examples" else ""})
    return pd.DataFrame(rows).set_index("technique").reindex([t for t in TECHNIQUES if t in set(table["technique"])])


def recorded(name: str = RECORDED_FILE) -> pd.DataFrame:
    """The recorded comparison (datasets/recorded/), as scripts/record_techniques.py wrote it."""
    from marketlab import data

    path = data.datasets_dir() / "recorded" / name
    if not path.is_file():
        raise MarketlabError(f"The recorded comparison {name} is not in {path.parent}.",
                             "Record it with: .venv/bin/python scripts/record_techniques.py")
    table = pd.read_csv(path)
    table.attrs["checks"] = [c for c in ("length", "banned_words", "required_facts", "faithfulness", "repetition",
                                         "hype", "disclaimers") if c in table.columns]
    return table


__all__ = [
    "RECORDED_FILE",
    "TECHNIQUES",
    "compare",
    "example_pairs",
    "final_copy",
    "followed",
    "load_techniques",
    "messages",
    "recorded",
    "score",
    "summary",
]
