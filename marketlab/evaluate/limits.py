"""The not_true column read as general rules: each phrase becomes words the copy must not claim, or a bound.

    parse_limit("rain cover not included")            # a mention saying a rain cover comes with it
    parse_limit("not suitable below -11 C")           # no temperature below -11 C
    parse_limit("does not sleep more than 2 people")  # "sleeps 4", "4 people"
    parse_limit("no eco certification", BrandVoice.load().proof_rules())   # the brand voice's eco words
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .finders import Finder, finder, phrase_finder, stem, trigger_finder
from .units import Quantity, quantities, singular
from .voice import ProofRule

_LEAD_WORDS = frozenset("a an the designed suitable suited rated made meant intended recommended for use used as to "
                        "be in on".split())
_TAIL_WORDS = frozenset("compatible compatibility safe use friendly ready".split())


def _key_phrase(phrase: str) -> str:
    tokens = re.split(r"\s+", phrase.lower().strip())
    while len(tokens) > 1 and tokens[0] in _LEAD_WORDS:
        tokens.pop(0)
    while len(tokens) > 1 and tokens[-1] in _TAIL_WORDS:
        tokens.pop()
    return " ".join(tokens)


@dataclass(frozen=True)
class Limit:
    """One not_true phrase read as a rule: words the copy must not claim, or a bound on a quantity."""

    item: str
    finder: Finder | None = None
    dim: str | None = None
    lower: float | None = None  # no claimed quantity below this (in the base unit)
    upper: float | None = None  # no claimed quantity above this
    verb: re.Pattern[str] | None = None  # "sleeps 4": a count claimed with a verb
    included: bool = False  # "X not included": only a mention that says X comes with it is a claim

    @property
    def fact(self) -> str:
        """How the evidence names this limit."""
        return f'not_true says "{self.item}"'


def _rule_for(phrase: str, rules: Iterable[ProofRule]) -> ProofRule | None:
    """The brand voice claim rule a phrase names ("eco", "4-season tent" -> four-season), if any."""
    low = phrase.lower()
    for rule in rules:
        if low == rule.claim.lower() or any(re.search(rf"(?<![\w-]){re.escape(t.lower())}(?![\w-])", low)
                                            for t in rule.trigger_words):
            return rule
    return None


def _bound(item: str, written: str, low: str) -> Limit | None:
    """'not suitable below -11 C', 'does not sleep more than 2 people', 'not for loads over 5 kg'."""
    bound = re.match(r"^(?:not|never|does not|do not)\b.*?\b(below|under|beneath|over|above|more than|beyond|"
                     r"exceeding)\s+(.+)$", low)
    if not bound:
        return None
    found = quantities(written[bound.start(2):])
    if not found:
        number = re.match(r"[-−+]?\d+(?:\.\d+)?", bound.group(2))
        noun = re.search(r"\b(\w+)\b", low[: bound.start(1)].split("not", 1)[-1])
        if not (number and noun):
            return None
        found = [Quantity(float(number.group()), "", "#" + singular(noun.group(1)), float(number.group()), 0, 0, 0,
                          number.group())]
    q = found[0]
    below = bound.group(1) in ("below", "under", "beneath")
    verb = None
    said = re.match(r"^(?:does|do) not (\w+)", low)
    if said and not below:
        verb = re.compile(rf"(?<![\w-]){re.escape(stem(said.group(1)))}\w*\s+(?:up to\s+)?(more than\s+|over\s+)?"
                          rf"(\d+)", re.I)
    return Limit(item, dim=q.dim, lower=q.base if below else None, upper=None if below else q.base, verb=verb)


def parse_limit(item: str, rules: Iterable[ProofRule] = (), contains_forms: Iterable[str] = ()) -> Limit | None:
    """Read one not_true phrase as a rule (None when it states no claim to avoid).

    contains_forms: a vocabulary pack's extra ways copy says a product contains X, as patterns with
    {stuff} where X goes (the outdoor pack's '{stuff}[- ]filled' reads "down-filled" for "does not contain down").
    """
    written = " ".join(item.split())
    low = written.lower()  # same length as written: positions carry over
    rules = list(rules)
    bounded = _bound(item, written, low)
    if bounded is not None:
        return bounded
    included = re.match(r"^(?:no\s+)?(.+?)\s+(?:is\s+|are\s+)?not included$", low) or \
        re.match(r"^no\s+(.+?)\s+included$", low)
    if included:
        return Limit(item, phrase_finder(_key_phrase(included.group(1))), included=True)
    certification = re.match(r"^no\s+(.+?)\s+certifi\w*$", low)
    if certification:
        rule = _rule_for(certification.group(1), rules)
        return Limit(item, trigger_finder(rule.trigger_words if rule else [certification.group(1)]))
    contains = re.match(r"^(?:does not|do not)\s+contain\s+(.+)$", low)
    if contains:
        stuff = re.escape(contains.group(1))
        extra = "".join(f"|{form.replace('{stuff}', stuff)}" for form in contains_forms)
        return Limit(item, finder(
            rf"(?:contain\w*|filled with|stuffed with|made (?:with|from|of))\s+(?:\w+\s+)?{stuff}(?![\w-])"
            + extra, (contains.group(1),)))
    is_not = re.match(r"^(.+?)\s+(?:is|are)\s+not\s+(.+)$", low)
    if is_not:
        return Limit(item, phrase_finder(_key_phrase(is_not.group(2))))
    negative = re.match(r"^(?:not|no|never|does not|do not|cannot)\s+(?:an?\s+)?(.+)$", low)
    if negative:
        rule = _rule_for(negative.group(1), rules)
        if rule is not None:
            return Limit(item, trigger_finder(rule.trigger_words))
        return Limit(item, phrase_finder(_key_phrase(negative.group(1))))
    x_not_y = re.match(r"^(.+?)\s+not\s+(.+)$", low)
    if x_not_y:
        x, y = phrase_finder(x_not_y.group(1)), phrase_finder(_key_phrase(x_not_y.group(2)))
        x_re, y_re = x.pattern.pattern, y.pattern.pattern
        both = rf"{y_re}[\s-]+{x_re}|{x_re}(?:\s+\w+){{0,2}}\s+{y_re}"  # "taped seams" or "seams fully taped"
        return Limit(item, finder(both, y.keys))
    return None
