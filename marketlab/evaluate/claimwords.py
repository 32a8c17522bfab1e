"""The claim words faithfulness looks for (features, materials) and the specs a figure can be said to be.

Each feature is a regex for the claim and a regex for the words in a product's facts that support
it. Marketing opinion ("comfortable", "high-quality") is not a claim about the facts and is not
listed. The lists are plain data: pass your own to faithfulness(features=..., materials=...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Feature:
    """A feature or material claim: the words that make it (a regex) and the words in the facts that support it."""

    name: str
    claim: str
    evidence: str  # a regex searched in the product's facts; "" = the claim's own words must be there
    words: tuple[str, ...] = ()  # lower-case text every match contains (default: read from claim)


# Feature and material claims a product description makes and the facts can settle. Marketing
# opinion ("comfortable", "high-quality") is not a claim about the facts and is not listed.
FEATURES: tuple[Feature, ...] = (
    Feature("recycled", r"recycl\w*", r"recycl"),
    Feature("warranty", r"(?:lifetime|\d+[- ]years?)\s+(?:warranty|guarantee)|warrant(?:y|ies|ied)", r"warrant",
            ("warrant", "guarantee")),
    Feature("breathable", r"breathab\w*", r"breath"),
    Feature("windproof", r"wind[- ]?(?:proof|resistant|resistance|tight|stopper)|(?:from|against) (?:the )?wind",
            r"wind", ("wind", "from", "against")),
    Feature("water-resistant", r"water[- ]?(?:resistant|resistance|repellent|repellency|repelling|tight)|"
            r"splash[- ]?proof|rain[- ]?proof|weather[- ]?(?:proof|resistant)|all[- ]weather",
            r"water[- ]?(?:resist|repell)|dwr|ipx|hydrostatic|waterproof"),
    Feature("insulated", r"insulat\w*|thermal lining", r"insulat|fill|down|synthetic|keeps (?:hot|cold)"),
    Feature("machine washable", r"machine[- ]wash\w*", r"machine[- ]wash"),
    Feature("dishwasher safe", r"dishwasher", r"dishwasher"),
    Feature("non-stick", r"non[- ]?stick", r"non[- ]?stick"),
    Feature("PFC-free", r"(?:pfc|pfas|fluorocarbon)[- ]free", r"(?:pfc|pfas|fluorocarbon)[- ]free", ("free",)),
    Feature("rechargeable", r"recharg\w*|usb(?:[- ]c)?", r"recharg|usb"),
    Feature("hydration", r"hydration\s+(?:compatible|bladder|reservoir|sleeve|system|port)", r"hydration"),
    Feature("crampon compatible", r"crampons?|crampon[- ]compatible", r"crampon"),
    Feature("taped seams", r"taped seams|seams?\s+(?:are\s+)?(?:fully\s+)?(?:taped|sealed)|seam[- ]sealed",
            r"taped|sealed"),
    Feature("foldable", r"fold(?:able|ing|s up)|collaps\w*", r"fold|collaps"),
    Feature("reflective", r"reflective", r"reflect"),
    Feature("UV protection", r"uv[- ](?:protect\w*|resist\w*)|upf\s*\d*|(?:from|against) (?:the )?sun(?:'s rays)?|"
            r"sun protection", r"uv|upf", ("uv", "upf", "sun")),
    Feature("odour control", r"anti-?(?:bacterial|microbial)|odou?r[- ]?(?:resist\w*|control|free)",
            r"anti-?(?:bacterial|microbial)|odou?r"),
    Feature("indoor use", r"indoors?|(?:your|the|own) home|at home|household", r"indoor|home",
            ("indoor", "home", "household")),
    Feature("snow and winter", r"snow(?!line)\w*|winter\w*|blizzards?|sub-?zero|freezing", r"4-season|snow|winter"),
    Feature("award or patent", r"award[- ]winning|best[- ]?sell\w*|patent\w*", r"award|patent"),
    Feature("where it is made", r"hand[- ]?(?:made|woven|crafted|sewn|stitched|finished)|sourced (?:from|in)|"
            r"made in (?!collaboration|partnership|mind)(?:the )?[a-z]+|based in (?:the )?[a-z]+|headquartered|"
            r"(?:the )?world'?s (?:largest|leading|first|biggest)|speciali[sz]\w* in|"
            r"(?:leading|well[- ]known|renowned|famous|established) (?:\w+ ){0,3}(?:brand|company|manufacturer|maker|"
            r"producer)",
            r"hand[- ]?made|sourced|made in",
            ("hand", "sourced", "made", "based", "headquartered", "world", "leading", "speciali", "known",
             "renowned", "famous", "established")),
    Feature("use in water", r"(?:in|into|under|through) (?:the )?water|underwater|submers\w*|swim\w*",
            r"ipx8|submersible", ("water", "submers", "swim")),
    Feature("kind to the planet", r"(?:safe|good|kind|better|friendly) (?:for|to) the (?:environment|planet)|"
            r"environmentally (?:safe|responsible|conscious|sound)|low[- ]impact",
            r"recycl|bluesign|responsible down|fsc|organic", ("safe", "good", "kind", "better", "friendly",
                                                             "environmentally", "low")),
    Feature("biodegradable or carbon neutral", r"biodegradable|compostable|carbon[- ]neutral|"
            r"climate[- ](?:neutral|positive|friendly)", r"biodegrad|compost|carbon[- ]neutral|climate",
            ("biodegradable", "compostable", "carbon", "climate")),
    Feature("tests and reviews", r"(?:lab|field|independently|rigorously) tested|tested (?:by|and (?:proven|approved)|"
            r"to)|proven to|clinically|(?:positive|rave|great|five-star|5-star) reviews?|recommended by|endorsed by|"
            r"approved by", r"tested|review|recommended|endorsed|approved",
            ("tested", "proven", "clinically", "review", "recommended", "endorsed", "approved")),
    Feature("where it is sold", r"(?:available|sold|stocked|purchased|bought) (?:for (?:purchase|sale) )?"
            r"(?:at|from|in|on|through|by) "
            r"(?:most |all |many |major |"
            r"leading |select(?:ed)? |the )?(?:\w+ ){0,2}(?:retailers?|stores?|shops?|outlets?|stockists?|schools?|"
            r"amazon|ebay|walmart|supermarkets?)", r"retailer|stockist|sold (?:at|by)",
            ("available", "sold", "stocked", "purchased", "bought")),
    Feature("price and offers", r"discount\w*|on sale|free (?:shipping|delivery|returns)|money[- ]back|\d+% off|"
            r"special offers?|limited[- ]time|(?:lowest|highest|best) price(?: point)?", r"discount|offer|sale",
            ("discount", "sale", "free", "money", "off", "special", "limited", "lowest", "highest", "best")),
    Feature("IP rating", r"ip[x0-9][0-9]", "", ("ip",)),  # the code itself must be in the facts: IPX8 is not IPX7
    Feature("extras", r"(?:a (?:wide )?range of|a variety of|a host of|plenty of|lots of|various|several|many|"
            r"additional|extra)\s+(?:other\s+)?(?:(?:essential|useful|handy|optional|practical)\s+)?(?:items|"
            r"accessories|extras|essentials|gear|tools|add-ons|attachments|utensils|appliances)",
            r"items|accessor|pieces|utensil",
            ("range", "variety", "host", "plenty", "lots", "various", "several", "many", "additional", "extra")),
    Feature("layers", r"(?:double|dual|twin|triple|two|three|multi)[- ](?:sided|layer(?:ed|s)?|walled|wall|"
            r"skin(?:ned)?|ply)", r"double|dual|twin|triple|layer|wall|ply|skin|\b\d(?:\.\d)?l\b",
            ("double", "dual", "twin", "triple", "two", "three", "multi")),
    Feature("sizes and colours", r"(?:various|several|many|multiple|different|a (?:wide )?range of|a variety of|"
            r"all) (?:sizes|colou?rs|styles|shapes)", r"sizes?\b|colou?rs?\b",
            ("various", "several", "many", "multiple", "different", "range", "variety", "all")),
    Feature("certified", r"certifi\w*", r"."),  # supported when the product has any certification
)

MATERIALS: tuple[Feature, ...] = tuple(Feature(name, claim, evidence, words) for name, claim, evidence, words in (
    ("nylon", r"nylon", r"nylon|polyamide", ()), ("polyester", r"polyester", r"polyester", ()),
    ("ripstop", r"rip-?stop", r"rip-?stop", ("rip",)), ("merino", r"merino", r"merino", ()),
    ("wool", r"wool(?:len)?", r"wool", ()), ("cotton", r"cotton", r"cotton", ()),
    ("leather", r"leather", r"leather|nubuck", ()), ("suede", r"suede", r"suede", ()),
    ("fleece", r"fleece", r"fleece", ()), ("Gore-Tex", r"gore-?tex", r"gore-?tex", ("gore",)),
    ("Cordura", r"cordura", r"cordura", ()), ("Dyneema", r"dyneema", r"dyneema", ()),
    ("aluminium", r"alumin(?:i)?um|alloy", r"alumin|alloy", ()), ("titanium", r"titanium", r"titanium", ()),
    ("steel", r"(?:stainless\s+)?steel", r"steel", ("steel",)),
    ("carbon", r"carbon[- ]fib(?:re|er)", r"carbon", ()),
    ("silicone", r"silicone?", r"silicon", ()), ("rubber", r"rubber", r"rubber|vibram", ()),
    ("Vibram", r"vibram", r"vibram", ()), ("polycarbonate", r"polycarbonate", r"polycarbonate", ()),
    ("EVA", r"eva(?:\s+foam)?", r"eva", ("eva",)),
    ("polyurethane", r"polyurethane|tpu", r"polyurethane|\bpu\b|tpu", ()),
    ("ePTFE", r"e?ptfe", r"ptfe", ("ptfe",)), ("bamboo", r"bamboo", r"bamboo", ()),
    ("canvas", r"canvas", r"canvas", ()),
    ("mesh", r"mesh", r"mesh", ()), ("neoprene", r"neoprene", r"neoprene", ()),
    ("PrimaLoft", r"primaloft", r"primaloft", ()),
    ("synthetic fill", r"synthetic\s+(?:fill|insulation)", r"synthetic", ()),
    ("down", r"(?:duck|goose|fill-power)\s+down|down[- ](?:fill(?:ed)?|insulat\w*|feathers?|filling)"
             r"|filled with down|\d+\s*fill[- ]power", r"down", ("down", "fill")),
    ("feathers", r"feathers?", r"feather|down", ()),
    ("plastic", r"plastic", r"plastic|polycarbonate|\babs\b|polypropylene|polyethylene", ()),
    ("kevlar", r"kevlar|aramid", r"kevlar|aramid", ()), ("hemp", r"hemp", r"hemp", ()),
))


# What a figure is said to be ("a capacity of 14.56 kg"), and the kinds of quantity that can be that.
ROLES: dict[str, frozenset[str]] = {
    "capacity": frozenset({"volume", "#person", "charge"}), "volume": frozenset({"volume"}),
    "weight": frozenset({"mass", "fabric_weight"}), "weighs": frozenset({"mass"}), "weighing": frozenset({"mass"}),
    "output": frozenset({"power", "light"}), "brightness": frozenset({"light"}),
    "height": frozenset({"length"}), "length": frozenset({"length"}), "distance": frozenset({"length"}),
    "temperature": frozenset({"temp"}), "runtime": frozenset({"time"}), "life": frozenset({"time"}),
    "price": frozenset({"usd"}), "costs": frozenset({"usd"}), "sleeps": frozenset({"#person"}),
    "serves": frozenset({"#person"}), "holds": frozenset({"volume", "#person"}),
    # A load is no spec of any product here: "can carry up to 300 g" turns the boot's own weight into a load.
    "carry": frozenset({"volume"}), "carries": frozenset({"volume"}), "load": frozenset(), "loads": frozenset(),
    "supports": frozenset(), "depth": frozenset({"length"}), "drop": frozenset({"length"}),
    "width": frozenset({"length"}), "time": frozenset({"time"}),
}
RATE = re.compile(r"\s*(?:of\s+[a-z]+\s+)?per\s+([a-z]+)")
# The spec names a role word can stand for ("holds 45 L" is the volume or the capacity).
SPEC_WORDS: dict[str, tuple[str, ...]] = {
    "weighs": ("weight",), "weighing": ("weight",), "sleeps": ("capacity",), "holds": ("capacity", "volume"),
    "capacity": ("capacity", "volume", "serves"), "volume": ("volume", "capacity"), "costs": ("price",),
    "runtime": ("life", "time"), "brightness": ("output",), "output": ("output",),
}
_FILLERS = frozenset("of is at reads comes in up to about around approximately just only a an the total maximum max "
                     "minimum min over under".split())
_ROLE_AFTER = re.compile(r"\W{0,2}(" + "|".join(ROLES) + r")\b")


def role_of(lowered: str, start: int, end: int) -> tuple[str, ...]:
    """What the figure at lowered[start:end] is said to be: ('capacity',) in "a capacity of 2 kg" or "2 kg
    capacity", ('depth', 'drop') in "a drop depth of 6 mm" (every spec word of the name); () when nothing."""
    words = [w.strip(":,;()") for w in lowered[max(0, start - 45):start].split()[-6:]]
    while words and words[-1] in _FILLERS:
        words.pop()
    named = []
    while words and words[-1] in ROLES:
        named.append(words.pop())
    if named:
        return tuple(named)
    after = _ROLE_AFTER.match(lowered, end, end + 20)
    return (after.group(1),) if after else ()
