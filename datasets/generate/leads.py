"""B2B leads from a CRM export: conversion depends on engagement, and the mess is real."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .common import Company, fmt

INDUSTRIES = ("Education", "Outdoor clubs", "Corporate", "Hospitality", "Youth organisations", "Government", "Retail")
REGIONS = ("Northeast", "Southeast", "Midwest", "Southwest", "West", "Canada")
SOURCES = ("web form", "trade show", "referral", "webinar", "paid search", "cold outreach", "partner")

SCHOOL_A = ("Maple Grove", "Riverside", "Cedar Hills", "Lincoln", "Westbrook", "Pine Valley", "Oak Ridge", "Lakeview",
            "Summit", "Brookfield", "Highland", "Fairview", "Stonebridge", "Willow Creek", "Eastwood", "Northgate",
            "Ashford", "Bayside", "Clearwater", "Dunmore", "Elmhurst", "Franklin", "Glenwood", "Hartwell", "Ironwood",
            "Jasper", "Kingsley", "Linden", "Millbrook", "Newfield", "Orchard Park", "Prescott", "Quincy", "Ravenna",
            "Sheffield", "Thornton", "Union Falls", "Vernon", "Whitman", "Yardley", "Bridgeport", "Canton", "Dover",
            "Evergreen", "Foxborough", "Greenville", "Hollister", "Kenwood", "Marlow", "Pembroke", "Rockport", "Salem",
            "Alderton", "Beacon Hill", "Carver", "Delmar", "Easton", "Fallbrook", "Granby", "Harmony", "Idlewood",
            "Juniper Flats", "Kessler", "Lockhart", "Montrose", "Norwood", "Oakdale", "Pinecrest", "Redmond Falls",
            "Shelby", "Tamarack", "Upland", "Valley Forge", "Westfield", "Ashby", "Bellmont", "Cortland", "Durham",
            "Emerson", "Fremont", "Gilford", "Hampton", "Irvington", "Kirkwood", "Lowell", "Medford", "Newport")
SCHOOL_B = ("High School", "Middle School", "Academy", "Prep", "Unified School District", "Community College")
CLUB_A = ("Blue Ridge", "Cascade", "Front Range", "Green Mountain", "Sierra", "Ozark", "Great Lakes", "Palisades",
          "Catskill", "Mesa Verde", "Superior", "Tahoe", "Bighorn", "Shenandoah")
CLUB_B = ("Hiking Club", "Mountaineers", "Trail Association", "Outing Club", "Climbing Collective", "Paddlers", "Ramblers")
CORP_A = ("Northwind", "Bluefin", "Ironbark", "Crescent", "Harbor", "Silverline", "Keystone", "Granite Peak", "Redwood",
          "Lumen", "Brightwater", "Copperfield", "Atlas", "Meridian", "Sterling", "Foxglove", "Kinetic", "Orchard",
          "Bramble", "Clearpath", "Driftwood", "Evermore", "Fairwind", "Goldcrest", "Hillcrest", "Inkwell", "Juniper",
          "Kingfisher", "Lakeshore", "Moonstone", "Nettle", "Oakhurst", "Pinnacle", "Quarry", "Rosewood", "Saltbox")
CORP_B = ("Logistics", "Software", "Health", "Financial", "Engineering", "Media", "Energy", "Consulting", "Foods", "Labs",
          "Analytics", "Insurance", "Architects", "Biotech", "Manufacturing", "Partners")
CORP_C = ("Inc", "LLC", "Corp", "Group", "Co", "Ltd")
HOSP = ("Lodge", "Resort", "Inn", "Camp & Retreat", "Guest Ranch")
YOUTH = ("Scout Council", "YMCA Camp", "Youth Outdoors", "4-H Club", "Adventure Camp")
GOV = ("Parks Department", "County Recreation", "State Parks Office")
RETAIL = ("Outfitters", "Trading Post", "Gear Exchange", "Mountain Shop")


PLACES = CLUB_A + SCHOOL_A


def _company(rng: np.random.Generator, industry: str) -> str:
    p = lambda seq: seq[int(rng.integers(len(seq)))]  # noqa: E731
    if industry == "Education":
        return f"{p(SCHOOL_A)} {p(SCHOOL_B)}"
    if industry == "Outdoor clubs":
        return f"{p(PLACES)} {p(CLUB_B)}"
    if industry == "Corporate":
        a, b = int(rng.integers(len(CORP_A))), int(rng.integers(len(CORP_B)))
        return f"{CORP_A[a]} {CORP_B[b]} {CORP_C[(a * 7 + b) % len(CORP_C)]}"
    if industry == "Hospitality":
        return f"{p(PLACES)} {p(HOSP)}"
    if industry == "Youth organisations":
        return f"{p(PLACES)} {p(YOUTH)}"
    if industry == "Government":
        return f"{p(SCHOOL_A)} {p(GOV)}"
    return f"{p(PLACES)} {p(RETAIL)}"


def _variant(rng: np.random.Generator, name: str) -> str:
    """A near-duplicate spelling of a company name, as typed by a different rep."""
    k = int(rng.integers(6))
    if k == 0:
        return name.lower()
    if k == 1:
        return name.upper()
    if k == 2:
        return f" {name}  "
    if k == 3:
        for suffix in (" Inc", " LLC", " Corp", " Co", " Group"):
            if name.endswith(suffix):
                return name[: -len(suffix)] + " Ltd"
        return name + " Ltd"
    if k == 4:
        return name.replace(" ", "  ", 1)
    return name + "."


def generate(company: Company, n: int) -> pd.DataFrame:
    """Return about ``n`` CRM lead rows (deterministic), duplicates and errors included."""
    rng = np.random.default_rng(company.seed + 7)
    start = np.datetime64("2023-01-01")
    rows = []
    names: set[str] = set()
    base_n = int(n * 0.93)
    for i in range(base_n):
        industry = INDUSTRIES[int(rng.choice(7, p=(0.27, 0.18, 0.25, 0.09, 0.1, 0.05, 0.06)))]
        for _attempt in range(30):
            name = _company(rng, industry)
            if name not in names:
                break
        names.add(name)
        size_mu = {"Education": 4.6, "Outdoor clubs": 3.2, "Corporate": 5.6, "Hospitality": 3.8,
                   "Youth organisations": 3.5, "Government": 5.0, "Retail": 2.8}[industry]
        employees = int(max(2, round(float(np.exp(rng.normal(size_mu, 1.0))))))
        source = SOURCES[int(rng.choice(7, p=(0.3, 0.12, 0.1, 0.12, 0.18, 0.13, 0.05)))]
        created = start + np.timedelta64(int(rng.integers(0, 700)), "D")
        warm = {"referral": 1.0, "trade show": 0.6, "webinar": 0.5, "partner": 0.5, "web form": 0.3,
                "paid search": 0.0, "cold outreach": -0.6}[source]
        interest = rng.normal(warm, 1.0)
        email_opens = int(rng.poisson(max(0.2, 3 + 2.2 * interest)))
        site_visits = int(rng.poisson(max(0.2, 2 + 1.8 * interest)))
        demo = int(rng.random() < 1 / (1 + np.exp(-(interest * 1.3 - 1.6))))
        logit = (-3.6 + 1.7 * demo + 0.16 * min(site_visits, 15) + 0.06 * min(email_opens, 20) + 0.5 * warm
                 + {"Education": 0.5, "Youth organisations": 0.4, "Outdoor clubs": 0.3, "Corporate": 0.0,
                    "Hospitality": 0.1, "Government": -0.4, "Retail": -0.3}[industry]
                 + rng.normal(0, 0.5))
        converted = int(rng.random() < 1 / (1 + np.exp(-logit)))
        gap = int(rng.integers(0, 120)) if (email_opens + site_visits) > 0 else 0
        last = created + np.timedelta64(gap, "D")
        deal = ""
        if converted:
            per_head = {"Education": 45, "Outdoor clubs": 60, "Corporate": 38, "Hospitality": 55,
                        "Youth organisations": 40, "Government": 30, "Retail": 70}[industry]
            value = float(np.exp(rng.normal(np.log(800 + per_head * min(employees, 400)), 0.45)))
            deal = fmt(round(value / 10) * 10)
        rows.append({
            "company": name, "industry": industry, "employees": str(employees), "region": REGIONS[int(rng.integers(6))],
            "source": source, "created_date": str(created), "email_opens": str(email_opens),
            "site_visits": str(site_visits), "demo_requested": str(demo), "last_activity_date": str(last),
            "converted": str(converted), "deal_value_usd": deal,
        })
    # Near-duplicates: the same organisation entered again by someone else.
    for _ in range(int(n * 0.05)):
        src = dict(rows[int(rng.integers(len(rows)))])
        src["company"] = _variant(rng, src["company"])
        shift = int(rng.integers(1, 60))
        src["created_date"] = str(np.datetime64(src["created_date"]) + np.timedelta64(shift, "D"))
        src["last_activity_date"] = str(np.datetime64(src["last_activity_date"]) + np.timedelta64(shift, "D"))
        src["source"] = SOURCES[int(rng.integers(7))]
        rows.append(src)
    order = rng.permutation(len(rows))
    rows = [rows[int(i)] for i in order]
    for i, r in enumerate(rows):
        r["lead_id"] = f"{'LD' if company.sku_prefix == 'RO' else 'HLD'}-{100001 + i}"
    # Missing values, as exported from a CRM nobody fully owns.
    for col, rate in (("industry", 0.04), ("employees", 0.08), ("region", 0.03), ("source", 0.03),
                      ("last_activity_date", 0.05)):
        for r in rows:
            if rng.random() < rate:
                r[col] = ""
    # Impossible values: typos and system defaults.
    for _ in range(6):
        rows[int(rng.integers(len(rows)))]["employees"] = str(-int(rng.integers(1, 50)))
    for _ in range(3):
        rows[int(rng.integers(len(rows)))]["employees"] = "0"
    for _ in range(4):
        rows[int(rng.integers(len(rows)))]["email_opens"] = "9999"
    for _ in range(5):
        r = rows[int(rng.integers(len(rows)))]
        if r["last_activity_date"]:
            r["last_activity_date"] = str(np.datetime64(r["created_date"]) - np.timedelta64(int(rng.integers(30, 400)), "D"))
    for _ in range(3):
        rows[int(rng.integers(len(rows)))]["created_date"] = "1900-01-01"
    won = [r for r in rows if r["deal_value_usd"]]
    for _ in range(2):
        r = won[int(rng.integers(len(won)))]
        r["deal_value_usd"] = "-" + r["deal_value_usd"]
    # Exact duplicate rows: the same record exported twice.
    dupes = [dict(rows[int(rng.integers(len(rows)))]) for _ in range(int(n * 0.02))]
    for d in dupes:
        rows.insert(int(rng.integers(len(rows))), d)
    cols = ["lead_id", "company", "industry", "employees", "region", "source", "created_date", "email_opens",
            "site_visits", "demo_requested", "last_activity_date", "converted", "deal_value_usd"]
    return pd.DataFrame(rows)[cols]
