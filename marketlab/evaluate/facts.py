"""Faithfulness to the facts: every claim in a text looked up in the product's row.

A claim is a number with its unit ("1.8 kg", "-15 C", "4 people"), a claim word the brand voice
says needs proof ("waterproof", "eco-friendly", "ultralight"), a feature ("breathable", "lifetime
warranty", "crampons"), a material ("merino", "down fill") or a certification. Each is looked up
in the product's facts (key_specs, weight_g with g/kg conversion, price_usd, materials,
certifications, the name) and checked against the not_true column, whose phrases are read as
general rules ("not X", "no X certification", "X not included", "does not sleep more than N",
"not suitable below N C"). A claim the facts do not support is flagged with the fact it
contradicts, or "not in the product facts".

    from marketlab.evaluate.facts import claims, faithfulness
    for claim in claims(text, product):
        print(claim.evidence(), claim.supported)
    faithfulness()(text, product, "web")     # Finding(passed=False, evidence='"waterproof" — not_true says ...')
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from marketlab.tables import is_missing, split_list

from . import general
from .checks import PASSED, Finding
from .claimwords import RATE, ROLES, SPEC_WORDS, Feature, role_of
from .finders import Finder, clause_at, finder, leading_words, negated, sentence_at, trigger_finder, word_forms
from .limits import Limit, parse_limit
from .units import Quantity, quantities, same_quantity, singular
from .vocabulary import COURSE_PACK, VocabularyPack, load_packs
from .voice import BrandVoice, ProofRule, as_voice, product_specs

__all__ = ["Claim", "Faithfulness", "Feature", "ProductFacts", "claims", "compile_facts", "faithfulness",
           "parse_limit"]
UNCHECKED = Finding(False, "unchecked: no claim recognised, so nothing was compared with the product facts",
                    unchecked=True)

NOT_IN_FACTS = "not in the product facts"
DENIES_A_FACT = "the copy denies it, but the product facts say it"
PRODUCT_FIELDS = ("sku", "name", "category", "price_usd", "weight_g", "materials", "key_specs", "certifications",
                  "not_true")


@dataclass(frozen=True)
class Claim:
    """One claim found in a text: what it says, what kind it is, and whether the product's facts support it."""

    text: str
    kind: str  # number, not_true, proof, feature, material, certification, included
    supported: bool
    fact: str  # the fact that supports it, the one it contradicts, or "not in the product facts"
    start: int = 0
    end: int = 0
    rule: str = ""  # the not_true phrase or brand voice claim it was checked against, if any

    def evidence(self) -> str:
        """'"waterproof" — not_true says "not waterproof"': the claim and why it is flagged."""
        return f'"{self.text}" — {self.fact}'


# A sentence about the order, not the product ("Every order ships in recycled cardboard packaging.").
_SHOP_WORDS = (r"packag\w*|orders?|ships?|shipping|shipped|deliver\w*|parcels?|returns?|customer service|"
               r"our\s+(?:\w+\s+)?team")


def _shop_pattern(extra: Iterable[str] = ()) -> re.Pattern[str]:
    words = "|".join([_SHOP_WORDS, *(r"\s+".join(map(re.escape, w.split())) for w in extra if w.strip())])
    return re.compile(rf"\b(?:{words})\b", re.I)


_ABOUT_THE_SHOP = _shop_pattern()
# After "battery" or "fuel": the word is an attribute ("battery life", "fuel type"), not the thing in the box.
_ATTRIBUTE_AFTER = re.compile(r"[\s-]+(?:life|level|levels|indicator|type|types|capacity|gauge|compartment|pocket|"
                              r"port|holder|storage|consumption|efficiency|usage|options?)\b", re.I)
_INCLUDED_AFTER = re.compile(r"\s*(?:is |are )?(?:included|supplied|provided|in the box|comes with)", re.I)
# Words that say something comes with the product ("includes a rain cover", "built-in rain cover").
_INCLUDED = re.compile(r"\b(?:includ\w*|comes? with|supplied|provided|in the box|built[- ]in|integrated|own|"
                       r"with (?:an?|its|the)|has an?|features?|equipped|packed with|ships with)\b", re.I)


# -- one product's facts, read once ---------------------------------------------------------------
@dataclass(frozen=True)
class _Proof:
    rule: ProofRule
    finder: Finder
    allowed: bool


@dataclass(frozen=True)
class ProductFacts:
    """A product's facts, read once: its quantities, limits, provable claims and the words of its row."""

    masks: tuple[str, ...]  # the product's own words, lower case: the name, spec lines, materials, certifications
    quantities: tuple[Quantity, ...]
    name_numbers: frozenset[float]
    limits: tuple[Limit, ...]
    proofs: tuple[_Proof, ...]
    facts_text: str  # name, key_specs, materials and certifications, lower case
    certifications: tuple[str, ...]
    other_certifications: Finder | None
    by_spec_word: Mapping[str, tuple[Quantity, ...]]  # "capacity" -> the quantities of specs named with that word
    specs: tuple[general.SpecFact, ...] = ()  # yes/no spec lines, read as attribute: value
    word_rules: tuple[general.WordRule, ...] = ()  # not_true phrases read as word rules (paraphrases)
    spec_values: Mapping[str, str] = None  # type: ignore[assignment]  # None: no spec values; readers use `or {}`
    certifications_text: str = ""
    restated: tuple[str, ...] = ()  # the row's own phrases, bar the name: restating one is a checked claim
    audience: str = ""  # the row's persona: who the product is for, lower case
    figures: tuple[general.SpecFigure, ...] = ()  # spec lines with figures, for "SPF 50" against "SPF: 30"


def _certification_forms(name: str) -> list[str]:
    """The ways copy names a certification: 'OEKO-TEX Standard 100' is also 'OEKO-TEX'."""
    short = re.sub(r"\s+(?:standard(?:\s+\d+)?|certified.*|certification|approved)$", "", name.strip(), flags=re.I)
    return list(dict.fromkeys([name.strip(), short.strip()]))


def mask_own_words(text: str, lowered: str, own: Iterable[str]) -> str:
    """text with every stretch that repeats one of the product's own phrases (lower case) blanked out."""
    spans = []
    for phrase in own:  # longest first
        at = lowered.find(phrase)
        while at >= 0:
            spans.append((at, at + len(phrase)))
            at = lowered.find(phrase, at + len(phrase))
    if not spans:
        return text
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def compile_facts(product: Mapping[str, Any], voice: BrandVoice, contains_forms: Iterable[str] = ()) -> ProductFacts:
    """Read one product row into the lookups faithfulness needs (contains_forms: a pack's, see parse_limit)."""
    name = "" if is_missing(product.get("name")) else str(product.get("name")).strip()
    certs = split_list(product.get("certifications"))
    materials = split_list(product.get("materials"))
    spec_lines, found = [], []
    by_word: dict[str, list[Quantity]] = {}
    specs = product_specs(product)
    said_no = []
    for spec, value in specs.items():
        if value.strip().lower() in general.NO_VALUES:
            said_no.append(f"{spec}: {value}")  # "Induction: no" supports no claim about induction
            continue
        spec_lines.append(f"{spec}: {value}")
        noun = "#" + singular(spec.split(" per ")[0].split()[-1])  # "Doors: 2" counts doors; "Invoices per month: 50"
        got = [q if q.dim else Quantity(q.value, spec, noun, q.base, q.decimals, 0, 0, q.text)
               for q in quantities(value, unitless=True)]
        found += got
        for word in re.findall(r"[a-z]+", spec.lower()):
            if word in ROLES:
                by_word.setdefault(word, []).extend(got)
    weight, price = product.get("weight_g"), product.get("price_usd")
    if weight is not None and not is_missing(weight):
        found.append(Quantity(float(weight), "g", "mass", float(weight), 0, 0, 0, f"{weight} g"))
        by_word.setdefault("weight", []).append(found[-1])
    if price is not None and not is_missing(price):
        found.append(Quantity(float(price), "$", "usd", float(price), 2, 0, 0, f"${price}"))
        by_word["price"] = [found[-1]]
    for value in [*materials, *certs, *split_list(product.get("not_true")), name]:
        found += quantities(value)
    # Restating the product's own facts word for word is never an invented claim: the name, a spec line
    # ("Fuel: butane canister"), a material, a certification, a required disclaimer.
    own = [name, *spec_lines, *said_no, *materials, *(form for cert in certs for form in _certification_forms(cert)),
           *(d.text for d in voice.required_disclaimers)]
    masks = tuple(sorted({" ".join(m.lower().split()) for m in own if m and m.strip()}, key=len, reverse=True))
    rules = voice.proof_rules()
    proofs = tuple(_Proof(rule, trigger_finder(rule.trigger_words), rule.allowed(product)) for rule in rules
                   if rule.trigger_words)
    limits = tuple(limit for item in split_list(product.get("not_true"))
                   if (limit := parse_limit(item, rules, contains_forms)))
    known = {form for rule in rules for cond in rule.allowed_if_any for c in (cond.certification_any or [])
             for form in _certification_forms(c)}
    mine = {form.lower() for cert in certs for form in _certification_forms(cert)}
    others = sorted({k for k in known if k.lower() not in mine}, key=len, reverse=True)
    other_finder = finder("|".join(rf"{re.escape(o.lower())}(?![\w-])" for o in others),
                           [o.split()[0].lower() for o in others]) if others else None
    rules_of_words = tuple(r for item in split_list(product.get("not_true")) if (r := general.word_rule(item)))
    restated = tuple(m for m in masks if m != " ".join(name.lower().split()))
    return ProductFacts(masks, tuple(found), frozenset(q.value for q in quantities(name, unitless=True)), limits,
                        proofs, " ; ".join([name, str(product.get("category", "")), *spec_lines, *materials,
                                            *certs]).lower(), tuple(certs),
                        other_finder, {word: tuple(qs) for word, qs in by_word.items()},
                        general.spec_facts(specs), rules_of_words, dict(specs), " ; ".join(certs).lower(), restated,
                        "" if is_missing(product.get("persona")) else str(product.get("persona")).lower(),
                        general.spec_figures(specs, lambda v: quantities(v, unitless=True)))


# -- "comes with X": what the copy says is in the box or on the product -----------------------------
_QUANTIFIERS = (r"(?:a wide range of|a range of|a variety of|a host of|a number of|a set of|a pair of|plenty of|"
                r"its own|an?|the|its|several|multiple|various|many|numerous|other|additional|extra|some|two|three|"
                r"four)")
# "includes ...", "comes with ...", "equipped with ..."; "features"/"boasts" only as verbs ("features a ...").
_INCLUDES = re.compile(rf"\b(?:(?:includes?|comes? with|equipped with)\s+(?:{_QUANTIFIERS}\s+)*|"
                       rf"(?:features|featuring|boasts|boasting)\s+(?:{_QUANTIFIERS}\s+)+)"
                       r"([a-z][a-z-]*(?:\s+[a-z][a-z-]*){0,2})")
_OBJECT_ENDS = frozenset("and or with that which to for of in on at as is are be by from so while but like such "
                         "including".split())
# Words that say nothing checkable about what comes with the product ("a range of options", "a sturdy design").
_VAGUE = frozenset("""range variety features feature options option design designs system systems technology
    technologies quality materials material comfort style styles performance durability protection support
    everything things thing elements benefits functions functionality capabilities capability details look feel
    blend perfect unique ideal great high advanced innovative special premium sturdy durable comfortable stylish
    modern practical versatile excellent exceptional superior impressive high-quality lightweight easy simple
    classic new latest best good nice amazing wide variety choice choices solution solutions needs product
    products capacity weight volume size output height length price sleek intricate robust elegant beautiful
    stunning attractive striking futuristic look looks multi-functional multifunctional multi-purpose all-in-one
    functional""".split())


def included_claims(masked: str, lowered: str, facts_text: str) -> list[Claim]:
    """Claims that something comes with the product ("includes a range of kitchen appliances"), each supported
    when every word of what it names (opinion words aside) is in the product's facts."""
    out: list[Claim] = []
    if not any(key in lowered for key in ("includ", "with", "featur", "boast")):
        return out
    for m in _INCLUDES.finditer(lowered):
        words = []
        for word in m.group(1).split():
            if word in _OBJECT_ENDS:
                break
            words.append(word)
        content = [w for w in words if len(w) >= 3 and w not in _VAGUE]
        if not content or negated(masked, m.start(), m.end()):
            continue
        end = m.start(1) + len(" ".join(words))
        supported = all(word_forms(w)[1] in facts_text for w in content)  # "double-sided zip": no double side
        fact = "in the facts" if supported else NOT_IN_FACTS
        out.append(Claim(masked[m.start():end], "included", supported, fact, m.start(), end))
    return out


# -- the check ------------------------------------------------------------------------------------
_PRIORITY = {"not_true": 0, "spec": 0.5, "proof": 1, "certification": 2, "material": 3, "feature": 4, "general": 4.5,
             "included": 5, "number": 6}


class Faithfulness:
    """Flags every claim in a text that the product's facts do not support or that not_true denies."""

    name = "faithfulness"
    defect: str | None = "unsupported_claim"
    describe = ("Every number, material, certification and feature claim is in the product's facts, and none "
                "contradicts its not_true list.")

    def __init__(self, voice: BrandVoice | Mapping[str, Any] | None = None, *, vocabulary: Any = COURSE_PACK,
                 features: Iterable[Feature] | None = None, materials: Iterable[Feature] | None = None) -> None:
        self.voice = as_voice(voice)
        self.packs: tuple[VocabularyPack, ...] = load_packs(vocabulary)
        if features is None:
            features = [f for pack in self.packs for f in pack.feature_list()]
        if materials is None:
            materials = [m for pack in self.packs for m in pack.material_list()]
        self.synonyms = general.Synonyms(tuple(tuple(str(w).lower() for w in group) for pack in self.packs
                                               for group in pack.synonyms))
        self._shop = _shop_pattern([w for pack in self.packs for w in pack.shop_words])
        self._contains = tuple(form for pack in self.packs for form in pack.contains_forms)
        self._lists = [(kind, feature, self._claim_finder(feature), re.compile(feature.evidence.lower()))
                       for kind, listed in (("feature", features), ("material", materials)) for feature in listed]
        # One pass over the key words tells which of the many feature patterns can match at all.
        self._always = [i for i, entry in enumerate(self._lists) if not entry[2].keys]
        self._by_key: dict[str, list[int]] = {}
        for i, entry in enumerate(self._lists):
            for key in entry[2].keys:
                self._by_key.setdefault(key, []).append(i)
        self._cache: dict[tuple[str, ...], ProductFacts] = {}

    @staticmethod
    def _claim_finder(feature: Feature) -> Finder:
        claim = feature.claim.lower()
        return finder(rf"(?:{claim})(?![\w-])", feature.words or leading_words(claim))

    def __repr__(self) -> str:
        packs = [p.name for p in self.packs]
        return f"faithfulness(voice={self.voice.brand!r}, vocabulary={packs or None!r})"

    def facts(self, product: Mapping[str, Any]) -> ProductFacts:
        """The product's compiled facts (read once per distinct product row)."""
        key = tuple(str(product.get(field, "")) for field in PRODUCT_FIELDS)
        facts = self._cache.get(key)
        if facts is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            facts = self._cache[key] = compile_facts(product, self.voice, self._contains)
        return facts

    def claims(self, text: str, product: Mapping[str, Any]) -> list[Claim]:
        """Every claim in the text, supported or not, in the order they appear."""
        facts = self.facts(product)
        masked = mask_own_words(text, text.lower(), facts.masks)
        lowered = masked.lower()
        numbers = quantities(masked)
        found: list[Claim] = []
        for limit in facts.limits:
            found += self._limit_claims(masked, lowered, numbers, limit, facts)
        for proof in facts.proofs:
            for start, end in proof.finder.spans(lowered):
                if negated(masked, start, end):
                    if proof.allowed:  # "not waterproof" for a product its facts prove waterproof
                        found.append(Claim(masked[start:end], "proof", False, DENIES_A_FACT, start, end,
                                           proof.rule.claim))
                    continue
                fact = f"allowed: {proof.rule.claim} is proven by the facts" if proof.allowed \
                    else proof.rule.explanation or f"{proof.rule.claim} needs proof from the facts"
                found.append(Claim(masked[start:end], "proof", proof.allowed, fact, start, end, proof.rule.claim))
        active = set(self._always)
        for key in [k for k in self._by_key if k in lowered]:
            active.update(self._by_key[key])
        for index in sorted(active):
            kind, feature, finder, evidence = self._lists[index]
            for start, end in finder.all_spans(lowered):
                if self._shop.search(sentence_at(masked, start)):
                    continue
                denied = negated(masked, start, end)
                if feature.name == "certified":  # the product's own certifications are masked by now
                    named = _named_certification(sentence_at(masked, start))
                    supported = bool(facts.certifications) and not named
                    if denied:  # "not certified by the OEKO-TEX Standard 100" for a product that is
                        clause = clause_at(text.lower(), start)
                        if any(form.lower() in clause for cert in facts.certifications
                               for form in _certification_forms(cert)):
                            found.append(Claim(masked[start:end], kind, False, DENIES_A_FACT, start, end,
                                               feature.name))
                        continue
                    fact = f"its certifications: {'; '.join(facts.certifications) or 'none'}"
                    said = f'names "{named}"; ' if named else ""
                    fact = f"in the facts ({fact})" if supported else f"{NOT_IN_FACTS} ({said}{fact})"
                else:
                    # An empty evidence pattern means the claim's own words must be in the facts.
                    supported = bool(evidence.search(facts.facts_text)) if evidence.pattern \
                        else lowered[start:end] in facts.facts_text
                    if denied:  # denying what the facts say ("not breathable" for a breathable jacket) is wrong too
                        if supported:
                            found.append(Claim(masked[start:end], kind, False, DENIES_A_FACT, start, end,
                                               feature.name))
                        continue
                    fact = f"in the facts ({feature.name})" if supported else NOT_IN_FACTS
                found.append(Claim(masked[start:end], kind, supported, fact, start, end, feature.name))
        if facts.other_certifications is not None:
            for start, end in facts.other_certifications.spans(lowered):
                if not negated(masked, start, end):
                    have = "; ".join(facts.certifications) or "none"
                    found.append(Claim(masked[start:end], "certification", False,
                                       f"{NOT_IN_FACTS} (its certifications: {have})", start, end))
        found += included_claims(masked, lowered, facts.facts_text)
        found += self._general_claims(masked, lowered, facts)
        found += [self._number_claim(lowered, q, facts) for q in numbers]
        return _without_overlaps(found)

    def _general_claims(self, masked: str, lowered: str, facts: ProductFacts) -> list[Claim]:
        """The claim forms that need no vocabulary: spec lines, not_true word rules, compounds, purposes."""
        out = []
        plain = general.plain_for_negation(masked)
        for spec in facts.specs:
            for m in (spec.pattern.finditer(lowered) if spec.key in lowered else ()):
                start, end = m.span()
                if negated(plain, start, end):
                    if not spec.says_no:  # "not induction-ready" for a pan whose facts say "Induction: yes"
                        out.append(Claim(masked[start:end], "spec", False, DENIES_A_FACT, start, end, spec.line))
                    else:
                        out.append(Claim(masked[start:end], "spec", True, f"in the facts ({spec.line})", start, end,
                                         spec.line))
                elif spec.says_no:
                    out.append(Claim(masked[start:end], "spec", False, f'the product facts say "{spec.line}"',
                                     start, end, spec.line))
                else:
                    out.append(Claim(masked[start:end], "spec", True, f"in the facts ({spec.line})", start, end,
                                     spec.line))
        for rule in facts.word_rules:
            for start, end in general.rule_spans(rule, masked, lowered, self.synonyms):
                out.append(Claim(masked[start:end], "not_true", False, rule.fact, start, end, rule.item))
        forms = general.compound_claims(masked, lowered, facts.facts_text, facts.certifications_text, facts.specs,
                                        self.synonyms)
        forms += general.purpose_claims(masked, lowered, f"{facts.facts_text} ; {facts.audience}",
                                        facts.spec_values or {}, self.synonyms, _VAGUE)
        forms += general.other_claims(masked, lowered, facts.facts_text, self.synonyms)
        forms += general.spec_number_claims(lowered, facts.figures, lambda v: quantities(v, unitless=True))
        out += [Claim(f.text, "general", f.supported, f.fact, f.start, f.end) for f in forms
                if not self._shop.search(sentence_at(masked, f.start))]
        return out

    @staticmethod
    def _limit_claims(masked: str, lowered: str, numbers: list[Quantity], limit: Limit,
                      facts: ProductFacts) -> list[Claim]:
        out = []
        if limit.finder is not None:
            for start, end in limit.finder.spans(lowered):
                if limit.included and not _included_here(masked, start, end):
                    continue
                if not negated(masked, start, end):
                    out.append(Claim(masked[start:end], "not_true", False, limit.fact, start, end, limit.item))
        if limit.dim is None:
            return out
        claimed = [q for q in numbers if q.dim == limit.dim]
        if limit.verb is not None:
            for m in limit.verb.finditer(masked):  # "sleeps 4"; "sleeps more than 1" claims at least 2
                count = float(m.group(2)) + (0.5 if m.group(1) else 0.0)
                claimed.append(Quantity(count, "", limit.dim, count, 0, m.start(), m.end(), m.group()))
        for q in claimed:
            if any(same_quantity(q, f) for f in facts.quantities):
                continue  # the product's own figure
            if (limit.lower is not None and q.base < limit.lower - 1e-9) or \
                    (limit.upper is not None and q.base > limit.upper + 1e-9):
                out.append(Claim(q.text, "not_true", False, limit.fact, q.start, q.end, limit.item))
        return out

    @staticmethod
    def _number_claim(lowered: str, q: Quantity, facts: ProductFacts) -> Claim:
        match = next((f for f in facts.quantities if same_quantity(q, f)), None)
        before = re.search(r"([a-z][\w-]*)\s*:?\s*$", lowered[max(0, q.start - 30):q.start])
        if match is None and before is not None:
            # "a pH 4.5 toner", "SPF 50 protection": the word before the figure names the spec, the word after
            # is no unit
            word = before.group(1)
            named = [f for f in facts.quantities if f.unit and word in re.findall(r"[a-z][\w-]*", f.unit.lower())]
            if named:
                said = f"{word} {q.value:g}"
                if any(abs(f.value - q.value) < 1e-9 for f in named):
                    return Claim(said, "number", True, f"in the facts ({named[0].unit}: {named[0].text})", q.start,
                                 q.end)
                return Claim(said, "number", False, f"the facts give {'; '.join(f.text for f in named)} for the "
                             f"{named[0].unit}", q.start, q.end)
        roles = role_of(lowered, q.start, q.end)
        role = roles[0] if roles else None
        if role and q.dim not in ROLES[role]:
            fact = f"{match.text} is in the facts, but as another spec" if match else NOT_IN_FACTS
            return Claim(f"{role} {q.text}", "number", False, fact, q.start, q.end)
        specs = [spec for word in roles for spec in SPEC_WORDS.get(word, (word,))]
        named = [f for spec in specs for f in facts.by_spec_word.get(spec, ())]
        if named and not any(same_quantity(q, f) for f in named):  # "a depth of 8 mm" when the lug depth is 4 mm
            said = "; ".join(f.text for f in named)
            return Claim(f"{role} {q.text}", "number", False, f"the facts give {said} for the {specs[0]}", q.start,
                         q.end)
        if role and not named and match is not None and role not in ("carry", "carries"):
            # "a width of 4 mm": the product has no width; 4 mm is its lug depth
            return Claim(f"{role} {q.text}", "number", False, f"{match.text} is in the facts, but as another spec",
                         q.start, q.end)
        if match is None and q.dim.startswith("#") and q.value in facts.name_numbers:
            return Claim(q.text, "number", True, "in the product name", q.start, q.end)  # "the Arete +4 bag"
        rate = RATE.match(lowered, q.end, q.end + 30)
        if match is not None and rate and f"per {singular(rate.group(1))}" not in facts.facts_text:
            # "22 litres of water per day": the figure is a fact, the rate is not
            return Claim(lowered[q.start:rate.end()], "number", False,
                         f"{match.text} is in the facts, but not per {rate.group(1)}", q.start, rate.end())
        if match is not None:
            return Claim(q.text, "number", True, f"in the facts ({match.text})", q.start, q.end)
        return Claim(q.text, "number", False, NOT_IN_FACTS, q.start, q.end)

    def __call__(self, text: str, product: Mapping[str, Any] | None, channel: str = "web") -> Finding:
        if product is None:
            return Finding(False, "no product facts to compare with")
        found = self.claims(text, product)
        bad = [c for c in found if not c.supported]
        if not bad:
            if found:
                return PASSED
            lowered = " ".join(text.lower().split())
            facts = self.facts(product)
            # Restating a fact word for word, or denying what not_true denies, is a claim that was checked.
            if any(phrase in lowered for phrase in facts.restated) \
                    or any(general.mentions(rule, lowered) for rule in facts.word_rules) \
                    or any(limit.finder is not None and next(limit.finder.spans(lowered), None) is not None
                           for limit in facts.limits):
                return PASSED
            return UNCHECKED
        return Finding(False, "; ".join(dict.fromkeys(c.evidence() for c in bad)))


# A certification named by the copy: "the World Wide Web Product Certification (WPPC)", "ISO 14001 certified".
_CERT_NAME = re.compile(r"(?:[A-Z][\w-]*\s+){1,5}(?:Certification|Certified|Standard|Program(?:me)?|Label|Seal)\b"
                        r"|\([A-Z]{2,}\)|\b(?:certified|approved) by (?:the )?[A-Z][\w-]*")


def _named_certification(sentence: str) -> str | None:
    """A certification named in a sentence (the product's own are blanked out before this is called)."""
    found = _CERT_NAME.search(sentence)
    return found.group().strip() if found else None


def _included_here(text: str, start: int, end: int) -> bool:
    """True when the words at text[start:end] are said to come with the product: "comes with a rain cover",
    "built-in rain cover" (just before, in the same sentence), "rain cover included" (just after)."""
    if _ATTRIBUTE_AFTER.match(text, end):  # "a battery life of 60 h" says nothing about batteries in the box
        return False
    sentence_start = max(text.rfind(mark, 0, start) for mark in ".!?\n") + 1
    return bool(_INCLUDED.search(text, sentence_start, start) or _INCLUDED_AFTER.match(text, end))


def _in_shop_sentence(text: str, at: int) -> bool:
    return bool(_ABOUT_THE_SHOP.search(sentence_at(text, at)))


def _without_overlaps(found: list[Claim]) -> list[Claim]:
    """One claim per stretch of text: a not_true contradiction wins over a proof rule, over a number."""
    kept: list[Claim] = []
    for claim in sorted(found, key=lambda c: (_PRIORITY[c.kind], c.supported, c.start)):
        if all(claim.end <= k.start or claim.start >= k.end for k in kept):
            kept.append(claim)
    return sorted(kept, key=lambda c: c.start)


def faithfulness(voice: BrandVoice | Mapping[str, Any] | None = None, *, vocabulary: Any = COURSE_PACK,
                 **lists: Any) -> Faithfulness:
    """The faithfulness check: the brand voice's claim rules (default: the course's), a vocabulary pack (default:
    the course's "outdoor"; None for the general claim forms only, or your own pack's name or .yaml file)."""
    return Faithfulness(voice, vocabulary=vocabulary, **lists)


_DEFAULT: Faithfulness | None = None


def claims(text: str, product: Mapping[str, Any], voice: BrandVoice | Mapping[str, Any] | None = None) -> list[Claim]:
    """Every claim in a text with whether the product's facts support it, for reading row by row."""
    global _DEFAULT
    if voice is not None:
        return Faithfulness(voice).claims(text, product)
    if _DEFAULT is None:
        _DEFAULT = Faithfulness()
    return _DEFAULT.claims(text, product)
