"""Product catalogue: specs with units, certifications and the claims that are NOT true."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .common import CATEGORIES, Company, fmt

# Model-line names. Learner and holdout catalogues draw from disjoint pools so no
# product name is shared between them.
MODEL_NAMES: dict[str, tuple[str, ...]] = {
    "RO": (
        "Talus", "Cirque", "Kestrel", "Larch", "Scree", "Bothy", "Corrie", "Tarn",
        "Ptarmigan", "Alder", "Switchback", "Cairn", "Arete", "Saddle", "Timberline",
        "Ridgeback", "Moraine", "Col", "Juniper", "Osprey Point", "Granite", "Fellside",
        "Headwall", "Bluebell", "Lodgepole", "Wren", "Basalt", "Glen", "Summitline",
        "Heron", "Whinchat", "Bracken", "Snowberry", "Kettle Lake", "Sorrel",
    ),
    "HX": (
        "Zephyr", "Nimbus", "Aurora", "Solstice", "Meridian", "Vireo", "Equinox",
        "Lumen", "Tundra", "Cobalt", "Saguaro", "Mesa", "Canyonlands", "Sable",
        "Mistral", "Sirocco", "Polaris", "Drift", "Halo", "Quartz",
    ),
}

# Share of the catalogue per category (sums to 1).
CATEGORY_SHARE = {
    "tents": 0.12, "sleeping bags": 0.107, "backpacks": 0.147, "jackets": 0.16,
    "footwear": 0.133, "cooking": 0.107, "lighting": 0.08, "accessories": 0.146,
}

ECO_CERTS = ("bluesign approved", "Global Recycled Standard", "Responsible Down Standard", "FSC certified")
OTHER_CERTS = ("OEKO-TEX Standard 100", "Fair Trade Certified sewing")


def _price(rng: np.random.Generator, low: float, high: float) -> float:
    """A retail price ending in .95 between low and high."""
    raw = rng.uniform(low, high)
    return float(max(5, round(raw / 5) * 5) - 0.05)


def _spec(name: str, value: object, unit: str = "") -> str:
    return f"{name}: {value} {unit}".rstrip()


def _kg(grams: int) -> str:
    return f"{grams / 1000:.2f}".rstrip("0").rstrip(".")


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _certs(rng: np.random.Generator, p_eco: float, eco=ECO_CERTS[:2], p_other: float = 0.08) -> list[str]:
    out: list[str] = []
    if rng.random() < p_eco:
        out.append(_pick(rng, eco))
    if rng.random() < p_other:
        out.append(_pick(rng, OTHER_CERTS))
    return out


def _eco_false(certs: list[str]) -> list[str]:
    return [] if any(c in ECO_CERTS for c in certs) else ["no eco certification"]


# --------------------------------------------------------------------------- tents
def _tent(rng, model):
    kind = _pick(rng, ("backpacking", "backpacking", "ultralight", "mountain", "family", "group"))
    cap = {"backpacking": _pick(rng, (1, 2, 2, 3)), "ultralight": _pick(rng, (1, 2)),
           "mountain": _pick(rng, (2, 3)), "family": _pick(rng, (4, 5, 6)), "group": _pick(rng, (6, 8))}[kind]
    per = {"backpacking": 700, "ultralight": 480, "mountain": 1250, "family": 1900, "group": 2300}[kind]
    grams = int(round(per * cap * rng.uniform(0.85, 1.15) + (400 if kind != "ultralight" else 150), -1))
    hh = int(_pick(rng, {"backpacking": (1200, 2000, 3000, 3000), "ultralight": (1200, 1500, 2000),
                         "mountain": (3000, 4000, 5000), "family": (1200, 2000, 3000, 4000),
                         "group": (2000, 3000)}[kind]))
    season = "4-season" if kind == "mountain" else "3-season"
    label = {"backpacking": "Backpacking Tent", "ultralight": "UL Tent", "mountain": "Mountain Tent",
             "family": "Family Tent", "group": "Group Tent"}[kind]
    fly = "20D silicone-coated ripstop nylon" if kind in ("ultralight", "mountain") else "75D polyurethane-coated polyester"
    poles = "DAC aluminium poles" if kind != "family" else "fibreglass and steel poles"
    materials = f"{fly} flysheet; breathable polyester inner; {poles}"
    specs = [
        _spec("Capacity", cap, "person"),
        _spec("Packed weight", _kg(grams), "kg"),
        _spec("Hydrostatic head", hh, "mm"),
        _spec("Season", season),
        _spec("Peak height", int(rng.integers(95, 120)) if cap <= 3 else int(rng.integers(185, 215)), "cm"),
    ]
    if kind != "group":
        specs.append(_spec("Doors", 1 if cap == 1 else 2))
    certs = _certs(rng, 0.3)
    not_true = []
    if hh < 1500:
        not_true.append("not waterproof")
    if season == "3-season":
        not_true.append("not a 4-season tent")
        not_true.append("not suitable for snow loading")
    not_true.append(f"does not sleep more than {cap} {'person' if cap == 1 else 'people'}")
    not_true += _eco_false(certs)
    persona = {"backpacking": "weekend hiker", "ultralight": _pick(rng, ("weekend hiker", "trail runner")),
               "mountain": "alpine climber", "family": "family camper", "group": "school trip organiser"}[kind]
    lo, hi = {"backpacking": (149, 399), "ultralight": (329, 599), "mountain": (449, 799),
              "family": (199, 649), "group": (499, 999)}[kind]
    channel = "b2b" if kind == "group" else _pick(rng, ("web", "web", "marketplace"))
    return dict(name=f"{model} {cap} {label}", price_usd=_price(rng, lo, hi), weight_g=grams,
                materials=materials, key_specs=specs, certifications=certs, not_true=not_true,
                persona=persona, channel_focus=channel)


# ------------------------------------------------------------------- sleeping bags
def _sleeping_bag(rng, model):
    kind = _pick(rng, ("summer", "three", "three", "winter", "expedition"))
    comfort = {"summer": _pick(rng, (8, 10)), "three": _pick(rng, (0, 2, 4)),
               "winter": _pick(rng, (-5, -7, -10)), "expedition": _pick(rng, (-15, -20))}[kind]
    limit = comfort - int(rng.integers(5, 7))
    down = kind in ("winter", "expedition") or rng.random() < 0.45
    fp = _pick(rng, (650, 750, 850)) if down else None
    base = {"summer": 700, "three": 1050, "winter": 1450, "expedition": 1900}[kind]
    grams = int(round(base * (0.8 if down else 1.15) * rng.uniform(0.9, 1.1), -1))
    fill = f"{fp} fill-power duck down" if down else "synthetic hollowfibre"
    specs = [
        _spec("Comfort temperature", comfort, "C"),
        _spec("Limit temperature", limit, "C"),
        _spec("Fill", fill),
        _spec("Packed weight", _kg(grams), "kg"),
        _spec("Fits height up to", _pick(rng, (185, 195, 205)), "cm"),
    ]
    certs = _certs(rng, 0.7 if down else 0.3, eco=("Responsible Down Standard",) if down else ("Global Recycled Standard",))
    not_true = [f"not suitable below {limit} C", "not waterproof"]
    not_true.append("not machine washable" if down else "does not contain down")
    not_true += _eco_false(certs)
    persona = {"summer": _pick(rng, ("family camper", "school trip organiser")), "three": "weekend hiker",
               "winter": "alpine climber", "expedition": "alpine climber"}[kind]
    lo, hi = {"summer": (49, 119), "three": (99, 279), "winter": (249, 479), "expedition": (449, 749)}[kind]
    if down:
        lo, hi = lo * 1.3, hi * 1.3
    sign = f"{comfort:+d}" if comfort > 0 else str(comfort)
    kind_word = "Down" if down else "Synthetic"
    channel = "b2b" if persona == "school trip organiser" else _pick(rng, ("web", "marketplace"))
    return dict(name=f"{model} {sign} {kind_word} Sleeping Bag", price_usd=_price(rng, lo, hi), weight_g=grams,
                materials=f"20D nylon ripstop shell with DWR finish; {fill} insulation; YKK two-way zip",
                key_specs=specs, certifications=certs, not_true=not_true, persona=persona, channel_focus=channel)


# ----------------------------------------------------------------------- backpacks
def _backpack(rng, model):
    kind = _pick(rng, ("daypack", "daypack", "trekking", "vest", "alpine", "rolltop", "group"))
    vol = {"daypack": _pick(rng, (18, 22, 26, 30)), "trekking": _pick(rng, (45, 55, 65, 70)),
           "vest": _pick(rng, (5, 8, 12)), "alpine": _pick(rng, (32, 38, 45)),
           "rolltop": _pick(rng, (20, 28)), "group": 25}[kind]
    per = {"daypack": 30, "trekking": 28, "vest": 40, "alpine": 24, "rolltop": 34, "group": 32}[kind]
    grams = int(round(vol * per * rng.uniform(0.85, 1.15) + 150, -1))
    fabric = _pick(rng, ("210D recycled nylon", "420D nylon", "600D polyester", "100D Dyneema-blend ripstop"))
    if kind == "rolltop":
        fabric = "500D TPU-laminated polyester"
    specs = [_spec("Volume", vol, "L"), _spec("Weight", _kg(grams), "kg")]
    if kind == "rolltop":
        specs.append(_spec("Hydrostatic head", 2000, "mm"))
    if kind in ("trekking", "alpine"):
        specs.append(_spec("Back length", "adjustable 42-54", "cm"))
    specs.append(_spec("Hydration compatible", "yes" if kind != "rolltop" else "no"))
    cover = kind == "trekking" or (kind == "daypack" and rng.random() < 0.4)
    specs.append(_spec("Rain cover", "included" if cover else "not included"))
    certs = _certs(rng, 0.45 if "recycled" in fabric else 0.15,
                   eco=("Global Recycled Standard",) if "recycled" in fabric else ("bluesign approved",))
    not_true = [] if kind == "rolltop" else ["not waterproof"]
    if not cover:
        not_true.append("rain cover not included")
    if kind == "vest":
        not_true.append("not designed for loads over 5 kg")
    not_true += _eco_false(certs)
    persona = {"daypack": _pick(rng, ("weekend hiker", "corporate gift buyer")), "trekking": "weekend hiker",
               "vest": "trail runner", "alpine": "alpine climber", "rolltop": "weekend hiker",
               "group": "school trip organiser"}[kind]
    label = {"daypack": "Daypack", "trekking": "Trekking Pack", "vest": "Running Vest", "alpine": "Alpine Pack",
             "rolltop": "Roll-Top Pack", "group": "Classroom Daypack"}[kind]
    lo, hi = {"daypack": (45, 129), "trekking": (169, 329), "vest": (79, 159), "alpine": (139, 259),
              "rolltop": (89, 169), "group": (39, 59)}[kind]
    channel = "b2b" if persona in ("school trip organiser", "corporate gift buyer") else _pick(rng, ("web", "marketplace"))
    return dict(name=f"{model} {vol} {label}", price_usd=_price(rng, lo, hi), weight_g=grams,
                materials=f"{fabric} body; EVA foam back panel; nylon webbing", key_specs=specs,
                certifications=certs, not_true=not_true, persona=persona, channel_focus=channel)


# ------------------------------------------------------------------------- jackets
def _jacket(rng, model):
    kind = _pick(rng, ("shell", "shell", "shell", "softshell", "down", "synthetic", "fleece"))
    certs: list[str]
    if kind == "shell":
        layers = _pick(rng, ("2.5L", "3L"))
        hh = int(_pick(rng, (10000, 15000, 20000, 28000)))
        grams = int(round(rng.uniform(230, 480), -1))
        specs = [_spec("Hydrostatic head", hh, "mm"), _spec("Breathability", _pick(rng, (10000, 15000, 20000, 30000)), "g/m2/24h"),
                 _spec("Weight", grams, "g"), _spec("Construction", layers), _spec("Seams", "fully taped")]
        materials = f"{layers} recycled nylon face with PU membrane" if rng.random() < 0.4 else f"{layers} nylon face with ePTFE membrane"
        name = f"{model} {layers} Waterproof Jacket"
        persona = _pick(rng, ("weekend hiker", "alpine climber", "weekend hiker"))
        lo, hi = (149, 449)
        not_true = ["not insulated"]
    elif kind == "softshell":
        grams = int(round(rng.uniform(320, 520), -1))
        specs = [_spec("Weight", grams, "g"), _spec("Stretch", "4-way"), _spec("Water repellency", "DWR finish"),
                 _spec("Wind resistance", "high")]
        materials = "nylon-elastane double weave with DWR finish"
        name = f"{model} Softshell Jacket"
        persona = _pick(rng, ("alpine climber", "trail runner"))
        lo, hi = (119, 249)
        not_true = ["not waterproof", "seams not taped"]
    elif kind == "down":
        fp = _pick(rng, (700, 800, 850))
        fillw = int(_pick(rng, (90, 120, 160, 220)))
        grams = int(round(fillw * 2.2 + rng.uniform(120, 200), -1))
        specs = [_spec("Fill", f"{fp} fill-power goose down"), _spec("Fill weight", fillw, "g"), _spec("Weight", grams, "g"),
                 _spec("Packs into", "own pocket")]
        materials = f"10D nylon shell; {fp} fill-power goose down"
        name = f"{model} Down Hoody"
        persona = "alpine climber"
        lo, hi = (199, 429)
        not_true = ["not waterproof", "insulation loses warmth when soaked"]
    elif kind == "synthetic":
        grams = int(round(rng.uniform(330, 520), -1))
        specs = [_spec("Insulation", f"{_pick(rng, (60, 80, 100))} g/m2 synthetic"), _spec("Weight", grams, "g"),
                 _spec("Water repellency", "DWR finish")]
        materials = "20D recycled polyester shell; synthetic insulation"
        name = f"{model} Insulated Jacket"
        persona = _pick(rng, ("weekend hiker", "family camper"))
        lo, hi = (129, 259)
        not_true = ["not waterproof"]
    else:
        grams = int(round(rng.uniform(300, 480), -1))
        specs = [_spec("Fabric weight", _pick(rng, (100, 200, 300)), "g/m2"), _spec("Weight", grams, "g"),
                 _spec("Logo embroidery", "available for orders of 20+")]
        materials = "recycled polyester fleece" if rng.random() < 0.5 else "polyester microfleece"
        name = f"{model} Fleece Jacket"
        persona = _pick(rng, ("corporate gift buyer", "school trip organiser", "family camper"))
        lo, hi = (49, 119)
        not_true = ["not waterproof", "not windproof"]
    eco = ("Responsible Down Standard",) if kind == "down" else (
        ("Global Recycled Standard",) if "recycled" in materials else ("bluesign approved",))
    certs = _certs(rng, 0.7 if kind == "down" else 0.35, eco=eco, p_other=0.18)
    if kind in ("shell", "softshell") and rng.random() < 0.5:
        not_true.append("DWR is not PFC-free")
    not_true += _eco_false(certs)
    channel = "b2b" if persona in ("corporate gift buyer", "school trip organiser") else _pick(rng, ("web", "web", "marketplace"))
    return dict(name=name, price_usd=_price(rng, lo, hi), weight_g=grams, materials=materials, key_specs=specs,
                certifications=certs, not_true=not_true, persona=persona, channel_focus=channel)


# ------------------------------------------------------------------------ footwear
def _footwear(rng, model):
    kind = _pick(rng, ("hiking", "hiking", "trail", "trail", "mountain", "approach", "kids"))
    membrane = kind in ("mountain",) or (kind in ("hiking", "kids") and rng.random() < 0.7) or (kind == "trail" and rng.random() < 0.25)
    per_shoe = {"hiking": (480, 640), "trail": (260, 340), "mountain": (780, 980), "approach": (380, 460), "kids": (300, 380)}[kind]
    shoe = int(round(rng.uniform(*per_shoe), -1))
    drop = {"hiking": 10, "trail": _pick(rng, (4, 6, 8)), "mountain": 12, "approach": 6, "kids": 8}[kind]
    specs = [_spec("Weight per shoe", shoe, "g"), _spec("Drop", drop, "mm"),
             _spec("Lug depth", {"trail": 5, "hiking": 4, "mountain": 6, "approach": 3, "kids": 4}[kind], "mm"),
             _spec("Waterproof membrane", "yes" if membrane else "no")]
    if kind == "mountain":
        specs.append(_spec("Crampon compatibility", "C2 semi-automatic"))
    label = {"hiking": "Hiking Boot", "trail": "Trail Running Shoe", "mountain": "Mountain Boot",
             "approach": "Approach Shoe", "kids": "Kids' Hiking Boot"}[kind]
    if membrane and kind != "mountain":
        label = label.replace("Boot", "WP Boot").replace("Shoe", "WP Shoe")
    not_true = [] if membrane else ["not waterproof"]
    if kind != "mountain":
        not_true.append("not crampon compatible")
    if kind == "trail":
        not_true.append("not designed for heavy loads")
    certs = _certs(rng, 0.15, eco=("bluesign approved",), p_other=0.0)
    not_true += _eco_false(certs)
    persona = {"hiking": "weekend hiker", "trail": "trail runner", "mountain": "alpine climber",
               "approach": "alpine climber", "kids": "family camper"}[kind]
    lo, hi = {"hiking": (129, 229), "trail": (109, 169), "mountain": (299, 449), "approach": (129, 179), "kids": (59, 99)}[kind]
    return dict(name=f"{model} {label}", price_usd=_price(rng, lo, hi), weight_g=shoe * 2,
                materials=_pick(rng, ("nubuck leather upper; Vibram outsole", "recycled mesh upper; rubber outsole",
                                      "synthetic suede and mesh upper; EVA midsole", "full-grain leather upper; PU midsole")),
                key_specs=specs, certifications=certs, not_true=not_true, persona=persona,
                channel_focus=_pick(rng, ("web", "marketplace", "web")))


# ------------------------------------------------------------------------- cooking
def _cooking(rng, model):
    kind = _pick(rng, ("stove", "stove", "system", "pot", "group", "mug"))
    if kind == "stove":
        grams = int(rng.integers(72, 130))
        specs = [_spec("Output", _pick(rng, (2600, 2800, 3000, 3200)), "W"), _spec("Boil time", _pick(rng, ("3.5", "4", "3")), "min per litre"),
                 _spec("Fuel", "butane-propane screw-thread canister"), _spec("Weight", grams, "g")]
        name, lo, hi = f"{model} Canister Stove", 39, 89
        not_true = ["not for indoor use", "fuel not included"]
        persona = _pick(rng, ("weekend hiker", "alpine climber"))
        materials = "stainless steel burner; aluminium pot supports; piezo igniter"
    elif kind == "system":
        grams = int(rng.integers(380, 520))
        specs = [_spec("Boil time", _pick(rng, ("2.5", "2.25", "3")), "min per litre"), _spec("Pot capacity", _pick(rng, ("1", "1.8")), "L"),
                 _spec("Weight", grams, "g"), _spec("Fuel", "butane-propane screw-thread canister")]
        name, lo, hi = f"{model} Stove System", 119, 189
        not_true = ["not for indoor use", "fuel not included"]
        persona = _pick(rng, ("alpine climber", "weekend hiker"))
        materials = "hard-anodised aluminium pot with heat exchanger; neoprene cozy"
    elif kind == "pot":
        mat = _pick(rng, ("titanium", "hard-anodised aluminium"))
        grams = int(rng.integers(95, 190))
        specs = [_spec("Capacity", _pick(rng, ("0.75", "0.9", "1.1", "1.3")), "L"), _spec("Weight", grams, "g"), _spec("Material", mat)]
        name, lo, hi = f"{model} {'Titanium' if mat == 'titanium' else 'Alloy'} Pot", 29, 69
        not_true = ["not non-stick", "not dishwasher safe"] if mat == "titanium" else ["not dishwasher safe"]
        persona = "weekend hiker"
        materials = mat
    elif kind == "group":
        grams = int(rng.integers(1400, 2300))
        specs = [_spec("Serves", _pick(rng, (4, 6, 8)), "people"), _spec("Largest pot", _pick(rng, ("3", "4", "5")), "L"),
                 _spec("Weight", grams, "g"), _spec("Pieces", _pick(rng, (9, 12, 14)))]
        name, lo, hi = f"{model} Group Cook Set", 79, 159
        not_true = ["stove not included"]
        persona = _pick(rng, ("school trip organiser", "family camper"))
        materials = "hard-anodised aluminium pots; silicone-coated handles"
    else:
        grams = int(rng.integers(60, 110))
        specs = [_spec("Capacity", _pick(rng, (350, 450)), "ml"), _spec("Weight", grams, "g"), _spec("Material", "double-wall titanium")]
        name, lo, hi = f"{model} Double-Wall Mug", 24, 44
        not_true = ["not for use on a stove"]
        persona = "corporate gift buyer"
        materials = "double-wall titanium; silicone lid"
    certs = _certs(rng, 0.03, eco=("FSC certified",), p_other=0.0)
    not_true += _eco_false(certs)
    channel = "b2b" if persona in ("school trip organiser", "corporate gift buyer") else _pick(rng, ("web", "marketplace"))
    return dict(name=name, price_usd=_price(rng, lo, hi), weight_g=grams, materials=materials, key_specs=specs,
                certifications=certs, not_true=not_true, persona=persona, channel_focus=channel)


# ------------------------------------------------------------------------ lighting
def _lighting(rng, model):
    kind = _pick(rng, ("headlamp", "headlamp", "headlamp", "lantern", "bulk"))
    ipx = _pick(rng, ("IPX4", "IPX4", "IPX7")) if kind != "lantern" else "IPX4"
    if kind == "lantern":
        lm = _pick(rng, (200, 300, 450))
        specs = [_spec("Output", lm, "lumen"), _spec("Battery life", _pick(rng, (60, 100, 120)), "h"),
                 _spec("Water resistance", ipx), _spec("Battery", "rechargeable 5200 mAh with USB-C power-bank output")]
        grams = int(rng.integers(240, 360))
        name, lo, hi, persona = f"{model} {lm} Camp Lantern", 34, 69, "family camper"
    else:
        lm = _pick(rng, (250, 350, 450, 600)) if kind == "headlamp" else 200
        rech = kind == "headlamp" and rng.random() < 0.6
        specs = [_spec("Output", lm, "lumen"), _spec("Beam distance", int(lm * _pick(rng, (0.25, 0.3))), "m"),
                 _spec("Battery life", _pick(rng, (40, 60, 80, 120)), "h"), _spec("Water resistance", ipx),
                 _spec("Battery", "rechargeable 1500 mAh" if rech else "3 x AAA")]
        grams = int(rng.integers(56, 95))
        name, lo, hi = f"{model} {lm} Headlamp", 24, 79
        persona = "school trip organiser" if kind == "bulk" else _pick(rng, ("trail runner", "weekend hiker", "alpine climber"))
        if kind == "bulk":
            name, lo, hi = f"{model} Headlamp 10-Pack", 119, 179
    not_true = [] if ipx == "IPX7" else ["not waterproof"]
    if "AAA" in " ".join(specs):
        not_true.append("batteries not included")
    certs = _certs(rng, 0.0, p_other=0.0)
    not_true += _eco_false(certs)
    return dict(name=name, price_usd=_price(rng, lo, hi), weight_g=grams,
                materials="polycarbonate housing; silicone head strap" if kind != "lantern" else "ABS housing; frosted diffuser",
                key_specs=specs, certifications=certs, not_true=not_true, persona=persona,
                channel_focus="b2b" if kind == "bulk" else _pick(rng, ("web", "marketplace", "marketplace")))


# --------------------------------------------------------------------- accessories
def _accessory(rng, model):
    kind = _pick(rng, ("poles", "drybag", "bottle", "gaiters", "beanie", "gloves", "firstaid", "flask"))
    certs: list[str] = []
    if kind == "poles":
        carbon = rng.random() < 0.4
        grams = int(rng.integers(380, 460) if carbon else rng.integers(480, 580))
        specs = [_spec("Weight", grams, "g per pair"), _spec("Length", "105-135", "cm"),
                 _spec("Shaft", "carbon" if carbon else "7075 aluminium"), _spec("Locking", "external lever")]
        name, lo, hi, persona = f"{model} {'Carbon' if carbon else 'Alloy'} Trekking Poles", 59, 149, _pick(rng, ("weekend hiker", "trail runner"))
        not_true, materials = ["not foldable", "not for use as avalanche probes"], "carbon fibre shafts; cork grips" if carbon else "aluminium shafts; EVA grips"
    elif kind == "drybag":
        vol = _pick(rng, (5, 10, 20, 35))
        grams = int(vol * 6 + rng.integers(30, 60))
        specs = [_spec("Volume", vol, "L"), _spec("Hydrostatic head", 5000, "mm"), _spec("Weight", grams, "g"), _spec("Closure", "roll-top")]
        name, lo, hi, persona = f"{model} {vol} Dry Bag", 14, 39, "weekend hiker"
        not_true, materials = ["not submersible"], "70D TPU-coated nylon"
        certs = _certs(rng, 0.3, eco=("Global Recycled Standard",), p_other=0.0)
    elif kind == "bottle":
        grams = int(rng.integers(280, 420))
        specs = [_spec("Capacity", _pick(rng, ("0.75", "1")), "L"), _spec("Keeps cold", 24, "h"), _spec("Weight", grams, "g"), _spec("Material", "18/8 stainless steel")]
        name, lo, hi, persona = f"{model} Insulated Bottle", 24, 44, _pick(rng, ("corporate gift buyer", "school trip organiser"))
        not_true, materials = ["not dishwasher safe"], "18/8 stainless steel; BPA-free lid"
    elif kind == "gaiters":
        grams = int(rng.integers(180, 260))
        specs = [_spec("Height", _pick(rng, (30, 40)), "cm"), _spec("Weight", grams, "g per pair"), _spec("Hydrostatic head", 10000, "mm")]
        name, lo, hi, persona = f"{model} Trek Gaiters", 39, 69, _pick(rng, ("weekend hiker", "alpine climber"))
        not_true, materials = ["not insulated"], "2-layer waterproof nylon; Hypalon instep strap"
    elif kind == "beanie":
        grams = int(rng.integers(55, 90))
        specs = [_spec("Fabric", "250 g/m2 merino wool"), _spec("Weight", grams, "g"), _spec("Logo embroidery", "available for orders of 20+")]
        name, lo, hi, persona = f"{model} Merino Beanie", 24, 39, "corporate gift buyer"
        not_true, materials = ["not windproof", "not waterproof"], "100% merino wool"
        certs = _certs(rng, 0.0, p_other=0.5, eco=ECO_CERTS[:1])
    elif kind == "gloves":
        grams = int(rng.integers(70, 140))
        specs = [_spec("Weight", grams, "g per pair"), _spec("Touchscreen", "index finger and thumb"), _spec("Insulation", "60 g/m2 synthetic")]
        name, lo, hi, persona = f"{model} Insulated Gloves", 29, 59, _pick(rng, ("weekend hiker", "alpine climber"))
        not_true, materials = ["not waterproof"], "polyester softshell back; goat leather palm"
    elif kind == "firstaid":
        grams = int(rng.integers(250, 700))
        specs = [_spec("Group size", _pick(rng, ("1-4", "5-15", "15-30")), "people"), _spec("Items", _pick(rng, (45, 90, 160))), _spec("Weight", grams, "g")]
        name, lo, hi, persona = f"{model} Group First Aid Kit", 29, 119, "school trip organiser"
        not_true, materials = ["not a substitute for first aid training", "no medicines included"], "nylon pouch; labelled compartments"
    else:
        grams = int(rng.integers(420, 560))
        specs = [_spec("Capacity", "0.5", "L"), _spec("Keeps hot", 12, "h"), _spec("Weight", grams, "g")]
        name, lo, hi, persona = f"{model} Summit Flask", 29, 49, "corporate gift buyer"
        not_true, materials = ["not dishwasher safe"], "double-wall stainless steel"
    not_true += _eco_false(certs)
    channel = "b2b" if persona in ("school trip organiser", "corporate gift buyer") else _pick(rng, ("web", "marketplace"))
    return dict(name=name, price_usd=_price(rng, lo, hi), weight_g=grams, materials=materials, key_specs=specs,
                certifications=certs, not_true=not_true, persona=persona, channel_focus=channel)


BUILDERS = {
    "tents": _tent, "sleeping bags": _sleeping_bag, "backpacks": _backpack, "jackets": _jacket,
    "footwear": _footwear, "cooking": _cooking, "lighting": _lighting, "accessories": _accessory,
}


def generate(company: Company, n: int) -> pd.DataFrame:
    """Return a catalogue of about ``n`` products for ``company`` (deterministic)."""
    rng = np.random.default_rng(company.seed + 1)
    models = MODEL_NAMES[company.sku_prefix]
    rows: list[dict] = []
    seen: set[str] = set()
    for category in CATEGORIES:
        count = max(2, int(round(n * CATEGORY_SHARE[category])))
        for _ in range(count):
            for _attempt in range(50):
                item = BUILDERS[category](rng, _pick(rng, models))
                if item["name"] not in seen:
                    break
            else:  # pragma: no cover - pools are large enough
                raise RuntimeError(f"could not find a unique {category} name")
            seen.add(item["name"])
            item["category"] = category
            rows.append(item)
    order = rng.permutation(len(rows))
    out = []
    for idx, i in enumerate(order):
        r = rows[int(i)]
        weight = r["weight_g"]
        if rng.random() < 0.04:
            weight = None  # supplier never sent it
        materials = r["materials"] if rng.random() > 0.04 else ""
        out.append({
            "sku": f"{company.sku_prefix}-{company.sku_start + idx}",
            "name": r["name"],
            "category": r["category"],
            "price_usd": fmt(r["price_usd"]),
            "weight_g": "" if weight is None else str(int(weight)),
            "materials": materials,
            "key_specs": "; ".join(r["key_specs"]),
            "certifications": "; ".join(r["certifications"]),
            "not_true": "; ".join(r["not_true"]),
            "persona": r["persona"],
            "channel_focus": r["channel_focus"],
        })
    return pd.DataFrame(out)


def parse_specs(key_specs: str) -> dict[str, str]:
    """Split 'Name: value unit; ...' into {name: 'value unit'}."""
    out: dict[str, str] = {}
    for part in key_specs.split(";"):
        if ":" in part:
            k, v = part.split(":", 1)
            out[k.strip()] = v.strip()
    return out
