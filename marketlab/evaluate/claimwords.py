"""The shape of a claim word (Feature) and the specs a figure can be said to be.

Each feature is a regex for the claim and a regex for the words in a product's facts that support
it. The lists themselves are data: a vocabulary pack (marketlab/reference/vocabulary/*.yaml) or
your own, passed as faithfulness(vocabulary=...) or faithfulness(features=..., materials=...).
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


def __getattr__(name: str):
    # The course's feature and material words live in its vocabulary pack
    # (marketlab/reference/vocabulary/outdoor.yaml); these names stay for code that imported them.
    if name in ("FEATURES", "MATERIALS"):
        from .vocabulary import COURSE_PACK, load_vocabulary

        pack = load_vocabulary(COURSE_PACK)
        return pack.feature_list() if name == "FEATURES" else pack.material_list()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
