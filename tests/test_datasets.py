"""The course datasets: schemas, reproducibility, the properties each lab relies on, loader errors."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datasets import build as build_mod
from datasets.generate import products as products_gen
from datasets.generate import reviews as reviews_gen
from datasets.generate.common import RIDGELINE
from marketlab import data
from marketlab.data import DEFECTS, SENTIMENTS, TOPICS, DataError

REPO = Path(__file__).resolve().parent.parent
DATASETS = REPO / "datasets"
HOLDOUT = REPO / "graders" / "holdout"

PRODUCT_COLUMNS = ["sku", "name", "category", "price_usd", "weight_g", "materials", "key_specs",
                   "certifications", "not_true", "persona", "channel_focus"]
EXPECTED = {
    "products": (PRODUCT_COLUMNS, 140, 160),
    "reviews": (["review_id", "sku", "date", "rating", "text", "sentiment", "topic", "labeller_id"], 550, 650),
    "leads": (["lead_id", "company", "industry", "employees", "region", "source", "created_date", "email_opens",
               "site_visits", "demo_requested", "last_activity_date", "converted", "deal_value_usd"], 1900, 2100),
    "campaign_weekly": (None, 104, 104),
    "rated_outputs": (["output_id", "sku", "channel", "prompt_version", "text", "human_rating", "rater_id",
                       *DEFECTS], 190, 210),
    "scorecard": (["proposal_id", "vendor", "file", "question", "score", "justification"], 25, 40),
}


def _slope(y: pd.Series) -> float:
    return float(np.polyfit(np.arange(len(y)), y.to_numpy(dtype=float), 1)[0])


def _words(text: str) -> int:
    return len(re.findall(r"[A-Za-z0-9][A-Za-z0-9'./+-]*", text))


# --------------------------------------------------------------------------- schemas
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_file_loads_with_expected_columns_and_size(name):
    columns, lo, hi = EXPECTED[name]
    df = data.load(name)
    if columns is not None:
        assert list(df.columns) == columns
    assert lo <= len(df) <= hi


def test_loaded_frames_are_typed():
    p = data.load("products")
    assert p["price_usd"].dtype == "float64" and str(p["weight_g"].dtype) == "Int64"
    assert p["weight_g"].isna().any(), "a few products should have no weight"
    r = data.load("rated_outputs")
    assert all(r[d].dtype == bool for d in DEFECTS)
    assert pd.api.types.is_datetime64_any_dtype(data.load("reviews")["date"])
    c = data.load("campaign_weekly")
    assert pd.api.types.is_datetime64_any_dtype(c["week_start"]) and c["clicks"].dtype == "int64"
    leads = data.load("leads")
    assert pd.api.types.is_datetime64_any_dtype(leads["last_activity_date"])
    assert str(leads["employees"].dtype) == "Int64"


def test_products_are_well_formed():
    p = data.load("products")
    assert p["sku"].is_unique and p["name"].is_unique
    assert set(p["category"]) == set(data.CATEGORIES)
    assert p["sku"].str.match(r"^RO-\d{4}$").all()
    assert (p["price_usd"] > 0).all()
    pair = re.compile(r"^[A-Z][\w ./'-]*: \S.*$")
    for specs in p["key_specs"]:
        parts = specs.split("; ")
        assert len(parts) >= 3 and all(pair.match(s) for s in parts), specs
    assert (p["certifications"] == "").mean() > 0.4, "certifications should be empty for many products"
    assert (p["not_true"] != "").mean() > 0.9


def test_not_waterproof_products_have_no_waterproof_proof():
    """The `not_true` list and the brand-voice proof rule must agree."""
    p = data.load("products")
    for specs, not_true in zip(p["key_specs"], p["not_true"]):
        s = products_gen.parse_specs(specs)
        hh = int(s["Hydrostatic head"].split()[0]) if "Hydrostatic head" in s else 0
        proven = hh >= 1500 or s.get("Water resistance") in ("IPX7", "IPX8") or s.get("Waterproof membrane") == "yes"
        if "not waterproof" in not_true.split("; "):
            assert not proven, specs


def test_brand_voice_is_machine_usable():
    v = data.load_brand_voice()
    assert set(v["length_limits"]) == set(data.COPY_CHANNELS)
    assert len(v["banned_words"]) >= 8
    claims = {c["claim"]: c for c in v["claims_requiring_proof"]}
    assert {"waterproof", "eco"} <= set(claims)
    waterproof = claims["waterproof"]["allowed_if_any"]
    assert any(c.get("spec") == "Hydrostatic head" and c.get("min") == 1500 for c in waterproof)
    assert all("text" in d and d["channels"] for d in v["required_disclaimers"])


# --------------------------------------------------------------------- reproducible
def test_generator_reproduces_committed_files_byte_for_byte(tmp_path):
    out, hold = tmp_path / "datasets", tmp_path / "holdout"
    written = build_mod.build(out, hold)
    assert len(written) >= 15
    for path in written:
        base, target = (out, DATASETS) if out in path.parents else (hold, HOLDOUT)
        committed = target / path.relative_to(base)
        assert committed.exists(), f"{committed} not committed; run python -m datasets.build"
        assert path.read_bytes() == committed.read_bytes(), f"{committed} differs from a fresh build"


def test_datasets_folder_is_under_5_mb():
    total = sum(f.stat().st_size for f in DATASETS.rglob("*") if f.is_file() and "__pycache__" not in f.parts)
    assert total < 5 * 1024 * 1024


# ------------------------------------------------------------------- lab properties
def test_effectiveness_rate_falls_while_clicks_rise():
    c = data.load("campaign_weekly")
    early, late = c.iloc[:52], c.iloc[-26:]
    assert 0.56 <= early["effectiveness_rate"].mean() <= 0.64
    assert 0.36 <= late["effectiveness_rate"].mean() <= 0.44
    assert late["clicks"].mean() > 1.3 * early["clicks"].mean()
    assert late["impressions"].mean() > early["impressions"].mean()
    assert _slope(c["effectiveness_rate"]) < 0 < _slope(c["clicks"])
    # the rate column is exactly what its definition says
    ratio = c["effective_recommendations"] / c["recommendations_served"]
    assert np.allclose(ratio, c["effectiveness_rate"], atol=6e-5)
    shares = c.filter(like="share_").drop(columns=["share_new_customers", "share_returning_customers"])
    assert np.allclose(shares.sum(axis=1), 1, atol=2e-3)


def test_campaign_card_states_the_shift_week():
    week = data.load("campaign_weekly")["week_start"].iloc[build_mod.CAMPAIGN_SHIFT_WEEK]
    assert week.strftime("%Y-%m-%d") in (DATASETS / "cards" / "campaign_weekly.md").read_text()
    rate = data.load("campaign_weekly")["effectiveness_rate"]
    before = rate.iloc[build_mod.CAMPAIGN_SHIFT_WEEK - 12:build_mod.CAMPAIGN_SHIFT_WEEK].mean()
    after = rate.iloc[build_mod.CAMPAIGN_SHIFT_WEEK + 10:build_mod.CAMPAIGN_SHIFT_WEEK + 22].mean()
    assert before - after > 0.15


def test_every_defect_type_appears_at_least_ten_times_and_ratings_follow_defects():
    r = data.load("rated_outputs")
    counts = r[list(DEFECTS)].sum()
    assert (counts >= 10).all(), counts.to_dict()
    n = r[list(DEFECTS)].sum(axis=1)
    clean = r[n == 0]
    assert len(clean) >= 20 and (clean["human_rating"] >= 4).sum() >= 15
    assert clean["human_rating"].mean() > r.loc[n > 0, "human_rating"].mean() + 1
    assert np.corrcoef(n, r["human_rating"])[0, 1] < -0.5
    assert set(r["sku"]) <= set(data.load("products")["sku"])
    assert r["text"].nunique() > 0.95 * len(r)


@pytest.mark.parametrize("directory", [DATASETS, HOLDOUT])
def test_length_and_banned_word_labels_are_true_of_the_text(directory):
    r = data.load("rated_outputs", directory=directory)
    v = data.load_brand_voice(directory=directory)
    for _, row in r.iterrows():
        lim = v["length_limits"][row["channel"]]
        over = ("max_words" in lim and _words(row["text"]) > lim["max_words"]) or (
            "max_chars" in lim and len(row["text"]) > lim["max_chars"])
        assert over == row["over_length"], row["output_id"]
        low = row["text"].lower()
        banned = any(re.search(r"(?<![\w-])" + re.escape(w.lower()) + r"(?![\w-])", low) for w in v["banned_words"])
        assert banned == row["banned_word"], row["output_id"]


def _policy_labels(section: str) -> set[str]:
    text = (DATASETS / "labelling_policy.md").read_text()
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", body, flags=re.M))


def test_review_labels_are_within_the_policy_categories():
    assert _policy_labels("Sentiment labels") == set(SENTIMENTS)
    assert _policy_labels("Topic labels") == set(TOPICS)
    rv = data.load("reviews")
    assert set(rv["sentiment"]) == set(SENTIMENTS) and set(rv["topic"]) == set(TOPICS)
    assert set(rv["sku"]) <= set(data.load("products")["sku"])
    assert rv["text"].nunique() > 0.9 * len(rv), "review texts should vary"
    assert rv["labeller_id"].nunique() >= 3


def test_review_label_noise_is_realistic_and_as_documented():
    prods = products_gen.generate(RIDGELINE, 150)
    truth = reviews_gen.generate(RIDGELINE, prods, 600, with_truth=True)
    differs = (truth["topic"] != truth["true_topic"]) | (truth["sentiment"] != truth["true_sentiment"])
    assert 0.08 <= differs.mean() <= 0.18
    stated = f"**{round(differs.mean() * 100)}% of rows differ**"
    assert stated in (DATASETS / "labelling_policy.md").read_text(), "update the noise figure in the policy"


def test_leads_are_messy_but_learnable():
    leads = data.load("leads")
    assert leads.duplicated().sum() >= 10
    norm = (leads["company"].str.strip().str.lower().str.replace(r"[^a-z ]", "", regex=True)
            .str.replace(r"\s+(inc|llc|corp|co|group|ltd)$", "", regex=True).str.split().str.join(" "))
    variants = leads.assign(norm=norm).drop_duplicates().groupby("norm")["company"].nunique()
    assert (variants > 1).sum() >= 20, "expected near-duplicate spellings of the same company"
    for col in ("industry", "employees", "region", "last_activity_date"):
        assert leads[col].isna().any(), col
    assert (leads["employees"] <= 0).any() and (leads["last_activity_date"] < leads["created_date"]).any()
    by_demo = leads.groupby("demo_requested")["converted"].mean()
    assert by_demo[1] - by_demo[0] > 0.15
    assert 0.05 < leads["converted"].mean() < 0.35
    won = leads[leads["converted"] == 1]
    assert won["deal_value_usd"].notna().mean() > 0.95 and leads.loc[leads["converted"] == 0, "deal_value_usd"].isna().all()


def test_proposals_vary_in_quality_and_length():
    props = data.load_proposals()
    assert 5 <= len(props) <= 6
    for p in props:
        assert 300 <= len(p["text"].split()) <= 600, p["file"]
        assert set(p["scores"]) == set(data.SCORECARD_QUESTIONS)
    totals = sorted(p["total"] for p in props)
    assert totals[-1] >= 9 and totals[0] <= 2


# ------------------------------------------------------------------------- holdouts
def test_holdouts_share_no_entity_with_learner_data():
    learner, hold = data.load("products"), data.load("products", directory=HOLDOUT)
    assert list(hold.columns) == PRODUCT_COLUMNS and 30 <= len(hold) <= 50
    assert not set(learner["sku"]) & set(hold["sku"])
    assert not set(learner["name"]) & set(hold["name"])
    assert hold["sku"].str.startswith("HX-").all()
    ho = data.load("rated_outputs", directory=HOLDOUT)
    assert 50 <= len(ho) <= 70 and set(ho["sku"]) <= set(hold["sku"])
    assert (ho[list(DEFECTS)].sum() >= 5).all()
    assert data.load_brand_voice(HOLDOUT)["brand"] != data.load_brand_voice()["brand"]
    assert not {p["vendor"] for p in data.load_proposals(HOLDOUT)} & {p["vendor"] for p in data.load_proposals()}
    assert (HOLDOUT / "README.md").read_text().lower().count("never") >= 1
    reviews, leads = data.load("reviews", directory=HOLDOUT), data.load("leads", directory=HOLDOUT)
    assert list(reviews.columns) == list(data.load("reviews").columns) and 60 <= len(reviews) <= 100
    assert set(reviews["sku"]) <= set(hold["sku"]) and not set(reviews["review_id"]) & set(data.load("reviews")["review_id"])
    assert list(leads.columns) == list(data.load("leads").columns) and 100 <= len(leads) <= 140
    assert not set(leads["lead_id"]) & set(data.load("leads")["lead_id"])


def test_holdout_series_degrade_at_another_week_or_not_at_all():
    deg = data.load("campaign_weekly_degrading", directory=HOLDOUT)
    stable = data.load("campaign_weekly_stable", directory=HOLDOUT)
    learner = data.load("campaign_weekly")

    def first_low_week(df):
        low = df["effectiveness_rate"].rolling(4).mean() < 0.5
        return df.loc[low, "week_start"].iloc[0] if low.any() else None

    assert first_low_week(deg) is not None and first_low_week(stable) is None
    assert first_low_week(deg) != first_low_week(learner)
    assert deg["effectiveness_rate"].iloc[-26:].mean() < 0.45
    assert abs(stable["effectiveness_rate"].iloc[-26:].mean() - stable["effectiveness_rate"].iloc[:26].mean()) < 0.03
    assert abs(_slope(stable["effectiveness_rate"])) < 2e-4
    assert stable["clicks"].iloc[-26:].mean() > stable["clicks"].iloc[:26].mean()


# ---------------------------------------------------------------------- loader errors
def test_missing_file_error_names_file_and_fix(tmp_path):
    with pytest.raises(DataError) as exc:
        data.load("products", directory=tmp_path)
    msg = str(exc.value)
    assert "products.csv" in msg and "python -m datasets.build" in msg
    assert isinstance(exc.value, ValueError)


def test_missing_column_error_names_column(tmp_path):
    pd.read_csv(DATASETS / "products.csv").drop(columns=["not_true"]).to_csv(tmp_path / "products.csv", index=False)
    with pytest.raises(DataError, match=r"products\.csv: column 'not_true' is missing"):
        data.load("products", directory=tmp_path)


def test_wrong_dtype_error_names_column_row_and_expectation(tmp_path):
    df = pd.read_csv(DATASETS / "products.csv", dtype=str, keep_default_na=False)
    df.loc[4, "price_usd"] = "about forty"
    df.to_csv(tmp_path / "products.csv", index=False)
    with pytest.raises(DataError) as exc:
        data.load("products", directory=tmp_path)
    msg = str(exc.value)
    assert "price_usd" in msg and "a number" in msg and "row 6" in msg and "about forty" in msg


def test_bad_category_and_bad_boolean_are_rejected(tmp_path):
    df = pd.read_csv(DATASETS / "products.csv", dtype=str, keep_default_na=False)
    df.loc[0, "category"] = "kayaks"
    df.to_csv(tmp_path / "products.csv", index=False)
    with pytest.raises(DataError, match="category.*one of"):
        data.load("products", directory=tmp_path)
    r = pd.read_csv(DATASETS / "rated_outputs.csv", dtype=str, keep_default_na=False)
    r.loc[3, "banned_word"] = "maybe"
    r.to_csv(tmp_path / "rated_outputs.csv", index=False)
    with pytest.raises(DataError, match="banned_word.*True or False"):
        data.load("rated_outputs", directory=tmp_path)


def test_env_var_selects_directory_and_malformed_files_raise(tmp_path, monkeypatch):
    shutil.copy(HOLDOUT / "products.csv", tmp_path / "products.csv")
    monkeypatch.setenv("MARKETLAB_DATA", str(tmp_path))
    assert data.load("products")["sku"].str.startswith("HX-").all()
    (tmp_path / "brand_voice.yaml").write_text("tone: [unclosed\n")
    with pytest.raises(DataError, match="brand_voice.yaml"):
        data.load_brand_voice()
    (tmp_path / "brand_voice.yaml").write_text("tone: {}\n")
    with pytest.raises(DataError, match="banned_words"):
        data.load_brand_voice()
    (tmp_path / "proposals").mkdir()
    shutil.copy(DATASETS / "proposals" / "scorecard.csv", tmp_path / "proposals" / "scorecard.csv")
    with pytest.raises(DataError, match="does not exist"):
        data.load_proposals()
    with pytest.raises(DataError, match="Unknown dataset"):
        data.load("customers")
