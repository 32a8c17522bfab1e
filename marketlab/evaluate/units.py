"""Numbers with their units, read from copy or from product facts, and compared after unit conversion.

    quantities("Weighs 1.32 kg, fits backs of 42-54 cm")   # 1.32 kg (1320 g), 42 cm and 54 cm
    same_quantity(quantities("1320 g")[0], quantities("1.32 kg")[0])   # True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_DIGITS = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
# A number not glued to a word, a code or another number ("IPX7", "g/m2" and "42-54" give no stray number).
_NUMBER = re.compile(rf"(?:(?<![\w.,/+−-])[-−+](?=\d)|(?<![\w.,/+−-])){_DIGITS}")
_PLAIN = re.compile(rf"[-−+]?{_DIGITS}")
_CURRENCY = re.compile(r"(US\$|\$|USD|€|EUR|£|GBP)\s?$")
_CODE_BEFORE = re.compile(r"\b[A-Z]{2,}[A-Z0-9-]*\s?$")  # "ISO 23537", "EN 13537": a standard, not a quantity
_RANGE = re.compile(r"[ \t]?(?:-|–|to)[ \t]?")

# The units a number can carry: dimension, factor to the dimension's base unit, and the spellings.
# Looked up as one word after the number; the first table is case-sensitive ("C" is Celsius). A vocabulary
# pack adds its shop's own units (add_units).
_UNIT_WORDS: tuple[tuple[str, float, str], ...] = (
    ("mass", 1000, "kg kgs kilo kilos kilogram kilograms"), ("mass", 1, "g gr gram grams"), ("mass", 0.001, "mg"),
    ("mass", 28.3495, "oz ounce ounces"), ("mass", 453.592, "lb lbs pound pounds"),
    ("length", 1, "mm millimetre millimetres millimeter millimeters"),
    ("length", 10, "cm centimetre centimetres centimeter centimeters"),
    ("length", 1000, "m metre metres meter meters"), ("length", 1e6, "km kilometre kilometres kilometer kilometers"),
    ("length", 25.4, "inch inches"), ("length", 304.8, "ft feet foot"),
    ("volume", 1, "ml millilitre millilitres milliliter milliliters"), ("volume", 10, "cl"),
    ("volume", 1000, "l litre litres liter liters ltr ltrs"),
    ("power", 1, "w watt watts"), ("power", 1000, "kw"), ("energy", 1, "wh"), ("charge", 1, "mah"),
    ("light", 1, "lm lumen lumens"),
    ("time", 1 / 60, "s sec secs second seconds"), ("time", 1, "min mins minute minutes"),
    ("time", 60, "h hr hrs hour hours"), ("time", 1440, "day days"), ("time", 10080, "week weeks"),
    ("time", 43800, "month months"), ("time", 525600, "year years yr yrs"),
    ("temp", 1, "celsius"), ("temp_f", 1, "fahrenheit"), ("percent", 1, "percent"),
    ("usd", 1, "usd dollar dollars bucks"), ("fabric_weight", 1, "g/m2 g/m² gsm"),
    ("#person", 1, "people person persons adult adults guest guests kids children"),
)
_CASED = {"C": ("temp", 1.0), "F": ("temp_f", 1.0), "L": ("volume", 1000.0), "W": ("power", 1.0),
          "mAh": ("charge", 1.0)}
_LOWER = {word: (dim, float(factor)) for dim, factor, words in _UNIT_WORDS for word in words.split()}
# Two-word units ("per cent"; a pack adds its own, such as "fill power"): first word -> {second word: dim}.
_PHRASES: dict[str, dict[str, str]] = {"per": {"cent": "percent"}}


def add_units(dimension: str, factor: float, words: list[str] | tuple[str, ...], cased: bool = False) -> None:
    """Teach quantities() a shop's units (a vocabulary pack's `units`): one-word spellings such as "denier"
    or "campers", two-word ones such as "fill power", and (cased=True) case-sensitive letters such as "D"."""
    for word in words:
        parts = word.replace("-", " ").split()
        if len(parts) == 2:
            _PHRASES.setdefault(parts[0].lower(), {})[parts[1].lower()] = dimension
        elif cased:
            _CASED[word] = (dimension, float(factor))
        else:
            _LOWER[word.lower()] = (dimension, float(factor))
    _quantities.cache_clear()
_TOKEN = re.compile(r"[ \t]?-?[ \t]?([A-Za-z][A-Za-z0-9/²]*|[°º%])")
_NEXT_WORD = re.compile(r"[ \t-]?([A-Za-z]+)")
# Words after a number that are not what it counts ("5 of them", "2 has").
_NOT_NOUNS = frozenset("""a an and are as at be by for from in into is it its of on or per than that the this to up
    with was were more less times plus over under about around out off only our your their we you he she they
    percent has have had been can will would could should may might must do does did so but if then
    words characters sentences lines tokens""".split())  # "at most 120 words" is about the copy, not the product


def singular(word: str) -> str:
    """A count noun in the singular, lower case: 'pockets' -> 'pocket', 'batteries' -> 'battery'."""
    word = word.lower()
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


@dataclass(frozen=True)
class Quantity:
    """A number with its unit as written, and its value in the dimension's base unit (g, mm, ml, C, min...)."""

    value: float  # as written
    unit: str  # as written ("kg", "°C", "people"); "" for a plain number
    dim: str  # "mass", "temp", "#person" (a count of something), "" for a plain number
    base: float  # in the base unit of dim
    decimals: int
    start: int
    end: int
    text: str
    low: float | None = None  # a range's other end, in the base unit ("42-54 cm")


def _to_float(raw: str) -> tuple[float, int]:
    raw = raw.replace(",", "").replace("−", "-")
    decimals = len(raw.split(".")[1]) if "." in raw else 0
    return float(raw), decimals


def _unit_at(text: str, pos: int) -> tuple[str, str, float, int] | None:
    """(unit as written, dimension, factor, end) of the unit right after a number at pos, or None.

    A unit ("kg", "°C", "g/m2/24h", "per cent"), else a count noun ("2 doors", "3 x AAA"): "#door".
    """
    match = _TOKEN.match(text, pos)
    if not match:
        return None
    token, end = match.group(1), match.end()
    lower = token.lower()
    if token in "°º" or lower in ("degree", "degrees"):  # "°C", "° F", "degrees Celsius", "degrees"
        after = _NEXT_WORD.match(text, end)
        scale = after.group(1).lower() if after else ""
        if after is not None and scale in ("c", "celsius", "f", "fahrenheit"):
            return text[match.start(1):after.end()], "temp_f" if scale.startswith("f") else "temp", 1.0, after.end()
        return token, "temp", 1.0, end
    if token == "%":
        return token, "percent", 1.0, end
    if lower in _PHRASES:  # "per cent"; a pack's two-word units ("fill power" / "fill-power")
        after = _NEXT_WORD.match(text, end)
        second = _PHRASES[lower].get(after.group(1).lower()) if after else None
        if after is not None and second is not None:
            return text[match.start(1):after.end()], second, 1.0, after.end()
    unit = _CASED.get(token) or (_LOWER.get(lower) if token not in ("c", "f", "d") else None)
    if unit is not None:
        return token, unit[0], unit[1], end
    if lower in ("x", "×"):  # "3 x AAA" counts AAA
        after = _NEXT_WORD.match(text, end)
        if after:
            return after.group(1), "#" + singular(after.group(1)), 1.0, after.end()
        return None
    if token.isalpha() and len(token) > 1 and lower not in _NOT_NOUNS:
        return token, "#" + singular(token), 1.0, end
    return None


def _base(value: float, dim: str, factor: float) -> tuple[str, float]:
    if dim == "temp_f":
        return "temp", (value - 32) * 5 / 9
    return dim, value * factor


def quantities(text: str, *, unitless: bool = False) -> list[Quantity]:
    """Every number with a unit in a text ("1.32 kg", "42-54 cm" gives 42 cm and 54 cm, "$159.95", "3 x AAA").

    Numbers inside codes ("IPX7", "EN ISO 23537") are skipped, and so are plain numbers unless unitless=True.
    """
    return list(_quantities(text, unitless))


@lru_cache(maxsize=8192)
def _quantities(text: str, unitless: bool) -> tuple[Quantity, ...]:
    out: list[Quantity] = []
    pos = 0
    while True:
        found = _NUMBER.search(text, pos)
        if not found:
            return tuple(out)
        start, end = found.span()
        pos = end
        if _CODE_BEFORE.search(text, max(0, start - 12), start):
            continue
        value, decimals = _to_float(found.group())
        second = None
        ranged = _RANGE.match(text, end)
        if ranged:
            other = _PLAIN.match(text, ranged.end())
            if other:
                second = (*_to_float(other.group()), other.end())
        currency = _CURRENCY.search(text, max(0, start - 5), start)
        if currency:
            symbol = currency.group(1)
            dim = "usd" if "$" in symbol or symbol == "USD" else f"currency_{symbol}"
            span_end = second[2] if second else end
            out.append(Quantity(value, symbol, dim, value, decimals, currency.start(), span_end,
                                text[currency.start():span_end]))
            pos = span_end
            continue
        unit = _unit_at(text, second[2]) if second else None
        if unit is None:
            second = None
            unit = _unit_at(text, end)
        if unit is None:
            if 1900 <= value <= 2099 and decimals == 0 and len(found.group()) == 4:
                out.append(Quantity(value, "", "#year", value, 0, start, end, found.group()))  # "a 2018 model"
            elif unitless:
                out.append(Quantity(value, "", "", value, decimals, start, end, found.group()))
            continue
        written, dim, factor, unit_end = unit
        pos = unit_end
        if second is not None:
            low_dim, low = _base(value, dim, factor)
            high_dim, high = _base(second[0], dim, factor)
            out.append(Quantity(value, written, low_dim, low, decimals, start, unit_end, text[start:unit_end]))
            out.append(Quantity(second[0], written, high_dim, high, second[1], start, unit_end,
                                text[start:unit_end], low=low))
            continue
        dim, base = _base(value, dim, factor)
        out.append(Quantity(value, written, dim, base, decimals, start, unit_end, text[start:unit_end]))


def same_quantity(claimed: Quantity, fact: Quantity) -> bool:
    """True when a claimed quantity states the fact, after unit conversion and rounding (1.3 kg for 1320 g)."""
    if claimed.dim != fact.dim:
        return False
    if fact.low is not None and min(fact.low, fact.base) <= claimed.base <= max(fact.low, fact.base):
        return True  # inside a range the facts give ("42-54 cm")
    if abs(claimed.base - fact.base) <= 1e-9 * max(1.0, abs(fact.base)):
        return True
    if claimed.dim == "temp":
        written_fact = fact.base * 9 / 5 + 32 if "F" in claimed.unit.upper() else fact.base
        return abs(round(written_fact, claimed.decimals) - claimed.value) < 1e-9
    scale = claimed.base / claimed.value if claimed.value else 1.0
    written_fact = fact.base / scale
    close = abs(round(written_fact, claimed.decimals) - claimed.value) < 1e-9
    # Rounding is fine ("1.3 kg" for 1.32 kg, "$160" for $159.95); a different figure is not ("2 kg" for 2.35 kg).
    return close and abs(claimed.base - fact.base) <= 0.05 * abs(fact.base)
