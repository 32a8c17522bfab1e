"""Load the course datasets as typed, validated pandas frames.

One job: find a data file, check it against the column spec declared here, and
return it with explicit dtypes. Graders load holdouts with the same functions by
passing ``directory=`` or setting ``MARKETLAB_DATA``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from marketlab.errors import MarketlabError

FIX = "Run `python -m datasets.build` from the repository root, or point MARKETLAB_DATA at the right folder."

# Fixed vocabularies, declared once. The generator, the labelling policy and the tests are checked against them.
CATEGORIES = ("tents", "sleeping bags", "backpacks", "jackets", "footwear", "cooking", "lighting", "accessories")
PERSONAS = ("weekend hiker", "alpine climber", "family camper", "trail runner", "school trip organiser",
            "corporate gift buyer")
CHANNEL_FOCUS = ("web", "marketplace", "b2b")
COPY_CHANNELS = ("web", "marketplace", "email", "social")
SENTIMENTS = ("positive", "neutral", "negative")
TOPICS = ("fit", "durability", "shipping", "price", "waterproofing", "comfort", "customer service")
DEFECTS = ("unsupported_claim", "banned_word", "over_length", "missing_required_fact", "wrong_tone", "repetition")
SCORECARD_QUESTIONS = ("training_data", "monitoring", "retraining_owner", "integration", "production_references")


class DataError(MarketlabError, ValueError):
    """A data file is missing or does not match its declared columns and types."""

    headline = "❌ The data could not be loaded."


@dataclass(frozen=True)
class Col:
    """One column: kind is str, list (semicolon-separated, may be empty), int, float, date or bool."""

    name: str
    kind: str = "str"
    nullable: bool = False
    choices: tuple[str, ...] | None = None


def _c(name: str, kind: str = "str", nullable: bool = False, choices=None) -> Col:
    return Col(name, kind, nullable, tuple(str(c) for c in choices) if choices is not None else None)


_CAMPAIGN = (
    _c("week_start", "date"), _c("impressions", "int"), _c("recommendations_served", "int"),
    _c("effective_recommendations", "int"), _c("effectiveness_rate", "float"), _c("clicks", "int"),
    _c("conversions", "int"), _c("revenue_usd", "float"), _c("share_new_customers", "float"),
    _c("share_returning_customers", "float"), _c("share_weekend_hikers", "float"),
    _c("share_alpine_climbers", "float"), _c("share_family_campers", "float"),
    _c("share_trail_runners", "float"), _c("share_b2b_buyers", "float"),
)

SCHEMAS: dict[str, tuple[str, tuple[Col, ...]]] = {
    "products": ("products.csv", (
        _c("sku"), _c("name"), _c("category", choices=CATEGORIES), _c("price_usd", "float"),
        _c("weight_g", "int", nullable=True), _c("materials", nullable=True), _c("key_specs", "list"),
        _c("certifications", "list"), _c("not_true", "list"), _c("persona", choices=PERSONAS),
        _c("channel_focus", choices=CHANNEL_FOCUS),
    )),
    "reviews": ("reviews.csv", (
        _c("review_id"), _c("sku"), _c("date", "date"), _c("rating", "int", choices=range(1, 6)), _c("text"),
        _c("sentiment", choices=SENTIMENTS), _c("topic", choices=TOPICS), _c("labeller_id"),
    )),
    "leads": ("leads.csv", (
        _c("lead_id"), _c("company"), _c("industry", nullable=True), _c("employees", "int", nullable=True),
        _c("region", nullable=True), _c("source", nullable=True), _c("created_date", "date"),
        _c("email_opens", "int"), _c("site_visits", "int"), _c("demo_requested", "int", choices=(0, 1)),
        _c("last_activity_date", "date", nullable=True), _c("converted", "int", choices=(0, 1)),
        _c("deal_value_usd", "float", nullable=True),
    )),
    "campaign_weekly": ("campaign_weekly.csv", _CAMPAIGN),
    "campaign_weekly_degrading": ("campaign_weekly_degrading.csv", _CAMPAIGN),
    "campaign_weekly_stable": ("campaign_weekly_stable.csv", _CAMPAIGN),
    "rated_outputs": ("rated_outputs.csv", (
        _c("output_id"), _c("sku"), _c("channel", choices=COPY_CHANNELS), _c("prompt_version"), _c("text"),
        _c("human_rating", "int", choices=range(1, 6)), _c("rater_id"), *(_c(d, "bool") for d in DEFECTS),
    )),
    "scorecard": ("proposals/scorecard.csv", (
        _c("proposal_id"), _c("vendor"), _c("file"), _c("question", choices=SCORECARD_QUESTIONS),
        _c("score", "int", choices=(0, 1, 2)), _c("justification"),
    )),
}

_EXPECT = {"str": "text", "list": "semicolon-separated text", "int": "a whole number", "float": "a number",
           "date": "a date like 2024-01-29", "bool": "True or False"}
_BOOLS = {"true": True, "false": False, "1": True, "0": False}


def datasets_dir(directory: str | os.PathLike | None = None) -> Path:
    """Return the data folder: ``directory``, else $MARKETLAB_DATA, else the checkout's datasets/ (marketlab.paths)."""
    if directory is not None:
        return Path(directory)
    if os.environ.get("MARKETLAB_DATA"):
        return Path(os.environ["MARKETLAB_DATA"])
    from . import paths

    return paths.datasets()


def _convert(raw: pd.Series, col: Col, file: str) -> pd.Series:
    empty = raw.str.strip() == ""

    def fail(mask: pd.Series, what: str) -> None:
        i = int(mask.to_numpy().nonzero()[0][0])
        raise DataError(f"{file}, column '{col.name}': expected {what}, but row {i + 2} has {raw.iloc[i]!r}.", FIX)

    if empty.any() and not col.nullable and col.kind not in ("list", "str"):
        fail(empty, _EXPECT[col.kind] + " (no blanks)")
    if col.kind == "str" and not col.nullable and empty.any():
        fail(empty, "text (no blanks)")
    if col.choices is not None:
        bad = ~empty & ~raw.isin(col.choices)
        if bad.any():
            fail(bad, f"one of {list(col.choices)}")
    if col.kind == "list":
        return raw.astype("string")
    if col.kind == "str":
        return raw.mask(empty).astype("string")
    if col.kind == "bool":
        mapped = raw.str.strip().str.lower().map(_BOOLS)
        if mapped.isna().any():
            fail(mapped.isna(), _EXPECT["bool"])
        return mapped.astype(bool)
    if col.kind == "date":
        out = pd.to_datetime(raw.mask(empty), format="%Y-%m-%d", errors="coerce")
    else:
        out = pd.to_numeric(raw.mask(empty), errors="coerce")
        if col.kind == "int":
            frac = out.notna() & (out % 1 != 0)
            if frac.any():
                fail(frac, _EXPECT["int"])
    bad = out.isna() & ~empty
    if bad.any():
        fail(bad, _EXPECT[col.kind])
    if col.kind == "int":
        return out.astype("Int64" if col.nullable else "int64")
    if col.kind == "float":
        return out.astype("float64")
    return out.astype("datetime64[ns]")


def load(name: str, directory: str | os.PathLike | None = None) -> pd.DataFrame:
    """Load dataset ``name`` (e.g. "products") as a typed, validated DataFrame."""
    if name not in SCHEMAS:
        raise DataError(f"Unknown dataset {name!r}.", f"Use one of {sorted(SCHEMAS)}.")
    filename, cols = SCHEMAS[name]
    path = datasets_dir(directory) / filename
    if not path.is_file():
        raise DataError(f"{filename}: file not found at {path}.", FIX)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{filename}: could not be read as CSV ({exc}).", FIX) from exc
    missing = [c.name for c in cols if c.name not in raw.columns]
    if missing:
        raise DataError(f"{filename}: column '{missing[0]}' is missing. Expected columns: "
                        f"{[c.name for c in cols]}.", FIX)
    out = pd.DataFrame({c.name: _convert(raw[c.name], c, filename) for c in cols})
    extra = [c for c in raw.columns if c not in out.columns]
    for c in extra:
        out[c] = raw[c].astype("string")
    return out


def load_brand_voice(directory: str | os.PathLike | None = None) -> dict:
    """Load brand_voice.yaml as a dict and check that its required sections are present."""
    path = datasets_dir(directory) / "brand_voice.yaml"
    if not path.is_file():
        raise DataError(f"brand_voice.yaml: file not found at {path}.", FIX)
    try:
        voice = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DataError(f"brand_voice.yaml: not valid YAML ({exc}).", FIX) from exc
    required = ("tone", "banned_words", "claims_requiring_proof", "required_disclaimers", "required_facts",
                "reading_level", "length_limits")
    if not isinstance(voice, dict) or any(k not in voice for k in required):
        have = sorted(voice) if isinstance(voice, dict) else type(voice).__name__
        raise DataError(f"brand_voice.yaml: expected sections {list(required)}, found {have}.", FIX)
    return voice


def load_proposals(directory: str | os.PathLike | None = None) -> list[dict]:
    """Load vendor proposals: one dict per proposal with its Markdown text and expert scores."""
    card = load("scorecard", directory)
    folder = datasets_dir(directory) / "proposals"
    out = []
    for pid, rows in card.groupby("proposal_id", sort=True):
        path = folder / rows["file"].iloc[0]
        if not path.is_file():
            raise DataError(f"proposals/scorecard.csv names {rows['file'].iloc[0]!r} for {pid}, "
                            f"but {path} does not exist.", FIX)
        out.append({
            "proposal_id": pid, "vendor": rows["vendor"].iloc[0], "file": path.name,
            "text": path.read_text(encoding="utf-8"),
            "scores": dict(zip(rows["question"], rows["score"].astype(int))),
            "justifications": dict(zip(rows["question"], rows["justification"])),
            "total": int(rows["score"].sum()),
        })
    return out
