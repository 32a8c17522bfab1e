"""Model-written product copy with seeded defects and human quality ratings.

Each text starts as clean copy built from the product's own facts. Defects are then
injected on purpose, so every defect label is true by construction; the generator
re-checks length and banned-word labels before accepting a row.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .common import DEFECTS, Company
from .products import parse_specs

PERSONA = {
    "weekend hiker": ("weekend hikers", "spend Saturdays on the hill and Mondays at a desk"),
    "alpine climber": ("climbers", "start before dawn and finish above the snowline"),
    "family camper": ("families", "pitch up at a campsite with kids in tow"),
    "trail runner": ("trail runners", "like to move fast and carry little"),
    "school trip organiser": ("trip leaders", "plan outdoor days for a whole class"),
    "corporate gift buyer": ("teams", "want a gift people will actually use"),
}

NOUN = {
    "tents": "tent", "sleeping bags": "sleeping bag", "backpacks": "pack", "jackets": "jacket",
    "footwear": "pair", "cooking": "piece of camp kit", "lighting": "light", "accessories": "bit of kit",
}

BENEFITS = {
    "tents": ["Pitching takes minutes, even in fading light.", "There is room inside to sit up and sort your kit.",
              "Two vents keep condensation down on still nights.", "Colour-coded clips make the pitch hard to get wrong."],
    "sleeping bags": ["A shaped hood holds warmth where you lose it most.", "The two-way zip lets you vent your feet on mild nights.",
                      "It squeezes into the stuff sack without a fight.", "A draught collar stops warm air escaping at the shoulders."],
    "backpacks": ["The hip belt takes the load off your shoulders.", "A side pocket keeps a bottle within reach.",
                  "The back panel is ventilated for warm climbs.", "Compression straps keep a half-empty pack tidy."],
    "jackets": ["The hood adjusts in one pull and moves with your head.", "Pit zips dump heat on the way up.",
                "Hand pockets sit above a hip belt.", "The cut leaves room for a warm layer underneath."],
    "footwear": ["The heel locks in without hot spots.", "The toe bumper shrugs off rocks.",
                 "The lugs bite on wet grass and loose gravel.", "They feel broken in from the first walk."],
    "cooking": ["Everything nests together to save space.", "It lights first time with the built-in igniter.",
                "The handles fold flat and stay cool.", "It is simple to clean at the end of the day."],
    "lighting": ["One button cycles through the modes.", "A red mode saves your night vision.",
                 "The strap stays put on a moving head.", "A lock mode stops it switching on in your bag."],
    "accessories": ["It earns its place in any pack.", "It is simple to use with cold hands.",
                    "It packs small and is easy to find.", "It is a useful extra for day trips and longer routes."],
}

CLOSERS = ["Check sizes and colours on the product page.", "Add it to your kit list before the next trip.",
           "See the full spec sheet for details.", "Order by Thursday for weekend delivery in most areas.",
           "Questions? Our gear team answers within one working day."]

FILLERS = [
    "Our gear team tested it on wet weekends and long summer days.",
    "It comes in a choice of colours to suit your other kit.",
    "Care instructions are printed on the label inside.",
    "Every order ships in recycled cardboard packaging.",
    "Returns are easy if it is not right for you.",
    "Pair it with the rest of the range for a complete set-up.",
    "Spare parts are available through customer service.",
    "We designed it after listening to feedback from customers.",
    "It has been a popular choice with our staff this season.",
    "Sizing notes are on the product page if you are unsure.",
    "It fits neatly alongside the rest of a typical weekend kit.",
    "Many customers buy it as part of a first outdoor set-up.",
    "You can see it in person at selected partner stores.",
    "The packaging is kept to a minimum and is easy to recycle.",
    "Every batch is checked by our quality team before it ships.",
    "Detailed photos show every pocket, seam and strap.",
]

BANNED_INSERTS = [
    "Simply the best-in-class {noun} on the market.", "A revolutionary take on the classic {noun}.",
    "Built to be practically indestructible.", "Satisfaction guaranteed on every trip.",
    "Unbeatable value for a {noun} like this.", "A real game-changer for your trips.",
    "Military-grade toughness in every seam.", "Cheap enough to buy one for every member of the group.",
    "Quite possibly the world's best {noun}.", "A miracle of modern design.",
]

TONE_INSERTS = [
    "OMG, this {noun} is INSANE!!! You NEED it!!",
    "Honestly?? Best thing EVER!!! Grab it NOW!!",
    "This solution leverages best-of-breed materials to deliver a compelling value proposition for outdoor stakeholders.",
    "Going forward, this product enables synergy across your end-to-end adventure workflow.",
    "Lowkey obsessed with this one, no cap, it absolutely slaps.",
    "Bestie, this {noun} is giving main-character energy fr.",
]

OPENERS = [
    "Meet the {name}, made for {plural} who {activity}.",
    "The {name} is built for {plural} who {activity}.",
    "If you {activity}, the {name} deserves a place in your kit.",
    "For {plural} who {activity}, there is the {name}.",
]

SPEC_SENTENCES = [
    "{Spec}: {vu}.", "The headline figure is {spec} of {vu}.", "{Spec} comes in at {vu}.",
    "On the spec sheet, {spec} reads {vu}.",
]


def _count_words(text: str) -> int:
    return len(re.findall(r"[A-Za-z0-9][A-Za-z0-9'./+-]*", text))


def _disclaimer(voice: dict, product: dict, channel: str) -> str | None:
    specs = parse_specs(product["key_specs"])
    for d in voice["required_disclaimers"]:
        if product["category"] in d["categories"] and channel in d["channels"]:
            if "when_spec_present" in d and d["when_spec_present"] not in specs:
                continue
            return d["text"]
    return None


def _proven_waterproof(specs: dict[str, str]) -> str | None:
    hh = specs.get("Hydrostatic head")
    if hh and int(hh.split()[0]) >= 1500:
        return f"a hydrostatic head of {hh}"
    if specs.get("Water resistance") in ("IPX7", "IPX8"):
        return f"an {specs['Water resistance']} rating"
    if specs.get("Waterproof membrane") == "yes":
        return "a waterproof membrane"
    return None


def _unsupported_claims(product: dict, rng: np.random.Generator) -> list[str]:
    """Sentences that would be false for this product (built from its not_true list)."""
    noun = NOUN[product["category"]]
    out = []
    for phrase in [p.strip() for p in product["not_true"].split(";") if p.strip()]:
        if phrase == "not waterproof":
            out.append("Fully waterproof, whatever the weather does.")
        elif phrase == "no eco certification":
            out.append(f"An eco-friendly {noun} you can feel good about.")
        elif phrase.startswith("not suitable below"):
            limit = int(phrase.split()[3])
            out.append(f"Stay warm down to {limit - 10} C.")
        elif phrase == "not a 4-season tent":
            out.append("A true four-season shelter for winter trips.")
        elif phrase.startswith("does not sleep more than"):
            n = int(phrase.split()[5])
            out.append(f"Sleeps {n + 2} adults with room to spare.")
        elif phrase.endswith("not included"):
            out.append(phrase.replace(" not included", " included").capitalize() + " in the box.")
        elif phrase in ("not dishwasher safe", "not machine washable", "not windproof", "not insulated", "not foldable"):
            out.append(f"It is {phrase[4:]}, too.")
        elif phrase == "not crampon compatible":
            out.append("Ready for crampons on winter routes.")
    return out


def _clean_parts(product: dict, channel: str, voice: dict, rng: np.random.Generator, drop_fact: bool) -> list[str]:
    """Sentences of clean copy; if drop_fact, the first key spec is left out."""
    specs = parse_specs(product["key_specs"])
    spec_items = list(specs.items())
    first_name, first_vu = spec_items[0]
    plural, activity = PERSONA[product["persona"]]
    name, noun, cat = product["name"], NOUN[product["category"]], product["category"]
    pick = lambda seq: seq[int(rng.integers(len(seq)))]  # noqa: E731
    benefits = list(rng.permutation(BENEFITS[cat]))
    proof = _proven_waterproof(specs)
    spec_sentence = pick(SPEC_SENTENCES).format(Spec=first_name, spec=first_name.lower(), vu=first_vu)
    disclaimer = _disclaimer(voice, product, channel)
    certs = [c.strip() for c in product["certifications"].split(";") if c.strip()]
    parts: list[str] = []
    if channel == "web":
        parts.append(pick(OPENERS).format(name=name, plural=plural, activity=activity))
        if not drop_fact:
            parts.append(spec_sentence)
        parts += [str(b) for b in benefits[:2]]
        if len(spec_items) > 1:
            parts.append(f"{spec_items[1][0]} is {spec_items[1][1]}.")
        if proof and not (drop_fact and first_name in ("Hydrostatic head", "Water resistance", "Waterproof membrane")):
            parts.append(f"It is waterproof, with {proof}.")
        if certs:
            parts.append(f"It carries {certs[0]} certification.")
        if product["materials"]:
            parts.append(f"Materials: {product['materials'].split(';')[0].strip()}.")
        if disclaimer:
            parts.append(disclaimer)
        parts.append(pick(CLOSERS))
    elif channel == "marketplace":
        parts.append(f"{name} - {cat.rstrip('s') if cat != 'accessories' else 'outdoor accessory'} for {plural}.")
        for i, (k, v) in enumerate(spec_items[:4]):
            if i == 0 and drop_fact:
                continue
            parts.append(f"- {k}: {v}")
        parts.append(f"- {benefits[0]}")
        if proof and not (drop_fact and first_name in ("Hydrostatic head", "Water resistance", "Waterproof membrane")):
            parts.append("- Waterproof (see spec sheet)")
        if certs:
            parts.append(f"- Certified: {', '.join(certs)}")
        if disclaimer:
            parts.append(disclaimer)
    elif channel == "email":
        parts.append(pick(["New in for {plural}: the {name}.", "Ready for the weekend? Say hello to the {name}.",
                           "Your next trip just got easier with the {name}."]).format(name=name, plural=plural))
        if not drop_fact:
            parts.append(spec_sentence)
        parts.append(str(benefits[0]))
        parts.append(pick(["Take a look today.", "See it on our site.", "Find out more on the product page."]))
    else:  # social
        hook = pick(["Out this weekend?", "New season, new kit.", "Packing list sorted.", "Trail-tested by our team."])
        head = name if not drop_fact else f"our new {noun}"
        parts.append(f"{hook} Meet {head}.")
        parts.append(f"{first_name} {first_vu}.")
        parts.append(pick(["Link in bio.", "Tap to shop.", "See it on our site."]))
        parts.append(pick(["#GetOutside", "#TrailReady", "#WeekendPlans", "#GearCheck"]))
    return parts


def _join(parts: list[str], channel: str) -> str:
    if channel == "marketplace":
        head, rest = parts[0], parts[1:]
        return head + "\n" + "\n".join(rest)
    return " ".join(parts)


def _over(text: str, channel: str, voice: dict) -> bool:
    lim = voice["length_limits"][channel]
    if "max_words" in lim and _count_words(text) > lim["max_words"]:
        return True
    return "max_chars" in lim and len(text) > lim["max_chars"]


def _has_banned(text: str, voice: dict) -> bool:
    low = text.lower()
    return any(re.search(r"(?<![\w-])" + re.escape(w.lower()) + r"(?![\w-])", low) for w in voice["banned_words"])


def _make_one(product: dict, channel: str, defects: list[str], voice: dict, rng: np.random.Generator) -> str | None:
    noun = NOUN[product["category"]]
    parts = _clean_parts(product, channel, voice, rng, drop_fact="missing_required_fact" in defects)
    insert_at = lambda: int(rng.integers(1, len(parts) + (0 if channel == "social" else 1)))  # noqa: E731
    if "unsupported_claim" in defects:
        claims = _unsupported_claims(product, rng)
        if not claims:
            return None
        c = claims[int(rng.integers(len(claims)))]
        parts.insert(insert_at(), f"- {c}" if channel == "marketplace" else c)
    if "banned_word" in defects:
        s = BANNED_INSERTS[int(rng.integers(len(BANNED_INSERTS)))].format(noun=noun)
        parts.insert(insert_at(), f"- {s}" if channel == "marketplace" else s)
    if "wrong_tone" in defects:
        s = TONE_INSERTS[int(rng.integers(len(TONE_INSERTS)))].format(noun=noun)
        parts.insert(1, s)
    if "repetition" in defects:
        if rng.random() < 0.75 or channel == "social":
            j = int(rng.integers(1, len(parts) - 1)) if len(parts) > 2 else 1
            parts.insert(min(len(parts), j + 1 + int(rng.integers(0, 2))), parts[j])
        else:
            parts.insert(1, f"This {noun} is really, really, really well made.")
    if "over_length" in defects:
        fill = [str(f) for f in rng.permutation(FILLERS)]
        while not _over(_join(parts, channel), channel, voice):
            if not fill:
                return None
            s = fill.pop()
            parts.insert(len(parts) - (1 if channel != "marketplace" else 0), f"- {s}" if channel == "marketplace" else s)
        # a few sentences past the limit, like a model that does not know when to stop
        for _ in range(int(rng.integers(0, 3))):
            if fill:
                s = fill.pop()
                parts.insert(len(parts) - 1, f"- {s}" if channel == "marketplace" else s)
    text = _join(parts, channel)
    # Accept only if the labels are true of the text.
    if _over(text, channel, voice) != ("over_length" in defects):
        return None
    if _has_banned(text, voice) != ("banned_word" in defects):
        return None
    if "web" == channel and "over_length" not in defects and _count_words(text) < voice["length_limits"]["web"]["min_words"]:
        return None
    return text


def _rating(defects: list[str], rng: np.random.Generator) -> int:
    penalty = {"unsupported_claim": 1.7, "missing_required_fact": 1.2, "wrong_tone": 1.1,
               "banned_word": 0.9, "repetition": 0.8, "over_length": 0.6}
    score = 4.55 - sum(penalty[d] for d in defects) + rng.normal(0, 0.5)
    return int(min(5, max(1, round(score))))


def generate(company: Company, products: pd.DataFrame, voice: dict, n: int, seed_offset: int = 0) -> pd.DataFrame:
    """Return ``n`` rated outputs for products of ``company`` (deterministic)."""
    rng = np.random.default_rng(company.seed + 5 + seed_offset)
    prods = products.to_dict("records")
    channels = ("web", "web", "marketplace", "email", "social")
    prefix = "OUT" if company.sku_prefix == "RO" else "HOUT"
    rows = []
    i = 0
    # Round-robin the main defect so every type appears often enough.
    while len(rows) < n:
        version = "v1" if len(rows) % 2 == 0 else "v2"
        p_clean = 0.22 if version == "v1" else 0.48
        defects: list[str] = []
        if rng.random() >= p_clean:
            defects.append(DEFECTS[i % len(DEFECTS)])
            i += 1
            for d in DEFECTS:
                if d not in defects and rng.random() < (0.14 if version == "v1" else 0.07):
                    defects.append(d)
        for _attempt in range(40):
            product = prods[int(rng.integers(len(prods)))]
            channel = channels[int(rng.integers(len(channels)))]
            text = _make_one(product, channel, defects, voice, rng)
            if text is not None:
                break
        else:
            continue
        rating = _rating(defects, rng)
        rows.append({
            "output_id": f"{prefix}-{len(rows) + 1:04d}",
            "sku": product["sku"],
            "channel": channel,
            "prompt_version": version,
            "text": text,
            "human_rating": rating,
            "rater_id": f"R{int(rng.integers(1, 4))}",
            **{d: d in defects for d in DEFECTS},
        })
    return pd.DataFrame(rows)
