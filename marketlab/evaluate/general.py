"""Claim forms that hold in any shop's copy, with no vocabulary pack: the shape of a claim, not its words.

- compound claims: "X-free", "X-safe", "X-proof", "X-resistant", "X-tested", "X compatible",
  "X certified / approved / compliant / ready" ("BPA-free", "dishwasher safe", "HIPAA compliant");
- who or what it is for: "suitable / safe / gentle enough for X", "safe to use during X", "works on X",
  "runs on X", "available on X", "integrates with X", "works offline", "for X skin / people / ages";
- spec lines read as attribute: value, "Induction: no" denying every mention of induction and
  "Induction: yes" supporting it;
- not_true phrases read as word rules that also catch paraphrases: the phrase's telling words, with
  their endings, in any order, in one sentence ("not for use while breastfeeding" catches "gentle
  enough to use throughout breastfeeding"; "cold wash only" catches "a hot wash").

Each form gives Claim objects (see facts.py); a claim whose words are not in the product's row is
"not in the product facts".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from .finders import negated, sentence_at

NOT_IN_FACTS = "not in the product facts"
DENIES_A_FACT = "the copy denies it, but the product facts say it"
NO_VALUES = frozenset({"no", "none", "false", "not available", "not supported"})
YES_VALUES = frozenset({"yes", "true", "included", "supported", "available"})

# General English around a claim's telling words: never a claim on their own.
_GENERIC = frozenset("""a an the and or of to in on at by for from with without while during throughout your our
    their its it them this that these those any all every each use used using user users product products item items
    is are be been being not no never only can may also very more less most such as like including include included
    includes supplied provided type types kind kinds mode support supported option options version feature features
    safe compatible compatibility ready friendly suitable suited designed made intended meant available set one
    people person thing things time times way ways well just even plus up down out over under about into onto
    some other others own than purchase sale order orders download online store stores shop shops retailer
    retailers website""".split())
_STOP_BEFORE = frozenset("""is are be was were being been it its it's them they you your we our and or but the a an
    to so not very fully totally completely entirely also both keep keeps kept stay stays feel feels always
    100% all more less most really truly""".split())
_OPINION_FREE = frozenset("stress hassle worry care carefree guilt mess fuss trouble risk pain clutter".split())
_SUFFIXES = "free|safe|proof|resistant|tested|proven|recommended|compatible|certified|approved|compliant|ready"
# "non-comedogenic", "anti-slip": a prefix that makes a claim of any word
_PREFIXED = re.compile(r"(?<![\w-])(?:non|anti)-?[a-z]{3,}(?:-[a-z]+)?(?![\w-])")
# "lifetime guarantee", "a 25-year warranty", "guaranteed": a promise the row must make
_PROMISE = re.compile(r"(?<![\w-])(?:(?:lifetime|life-long|\d+[- ](?:year|month|day)s?|money[- ]back)[\s-]+)?"
                      r"(?:warrant(?:y|ies)|guarantees?)(?![\w-])")
# "made in Portugal", "hand-forged in Japan": where it comes from must be in the row
_ORIGIN = re.compile(r"(?<![\w-])(?i:(?:hand[- ]?)?(?:made|manufactured|produced|forged|crafted|sewn|assembled|"
                     r"built|grown|sourced|printed|brewed|distilled)\s+in\s+(?:the\s+)?)([A-Z][\w-]+)")
_ORIGIN_VERBS = ("made", "manufactur", "produced", "forged", "crafted", "sewn", "assembled", "built", "grown",
                 "sourced", "printed", "brewed", "distilled")
_HAND = re.compile(r"(?<![\w-])hand[- ]?(?:made|forged|crafted|sewn|stitched|woven|finished|poured|painted)(?![\w-])")
_SUFFIX_KEYS = ("free", "safe", "proof", "resist", "test", "proven", "recommend", "compatib", "certif", "approv",
                "complian", "ready")
_COMPOUND = re.compile(rf"(?<![\w-])([a-z0-9][a-z0-9]*(?:-[a-z0-9]+)*)[- ]({_SUFFIXES})(?![\w-])")
_PURPOSE = re.compile(
    r"(?<![\w-])(?:(?:suitable|suited|safe|approved|recommended|gentle enough|mild enough|formulated)"
    r"(?:\s+to\s+use|\s+for\s+use)?\s+(?:for|during|throughout|while|with|on)"
    r"|safe\s+to\s+use\s+(?:during|throughout|while|with|on)|suits?"
    r"|(?:works?|working|runs?|running)\s+(?:with|on|in)"
    r"|(?:available|install(?:ed)?(?:\s+it)?)\s+(?:on|for|in)"
    r"|compatible\s+with|integrates?\s+with|syncs?\s+with)\s+((?:[\w+-]+)(?:(?:\s+|,\s*)(?:and\s+|or\s+)?[\w+-]+){0,5})")
_OFFLINE = re.compile(r"(?<![\w-])works?\s+(offline|wirelessly|underwater)\b")
_FOR_WHOM = re.compile(r"(?<![\w-])for\s+((?:all|every|any|[a-z]+(?:(?:,\s*|\s+and\s+|\s+or\s+)[a-z]+)?)\s+"
                       r"(?:skin|hair|scalps?|ages|kids|children|babies|toddlers|infants))"
                       r"(?:\s+types?)?\b")
_OBJECT_STOP = re.compile(r"\b(?:to|that|which|so|because|when|as|while|without|in|at|from|by|is|are|it|you|"
                          r"your|with|for|thanks|whenever|of|the)\b|[.;:!?()]")
_UNIVERSAL = frozenset({"all", "every", "any"})
# What it is made of or contains: every telling word must be in the row ("made with organic oats").
_MADE_OF = re.compile(r"(?<![\w-])(?:contains?|containing|made\s+(?:with|from|of)|formulated\s+with|enriched\s+with|"
                      r"infused\s+with|rich\s+in)\s+((?:[\w%+-]+)(?:(?:\s+|,\s*)(?:and\s+)?[\w%+-]+){0,3})")


def lemma(word: str) -> str:
    """A regex for a word with any ending: 'breastfeeding' also finds 'breastfeed', 'pregnant' 'pregnancy'."""
    word = word.lower().strip("-")
    parts = word.split("-")
    if len(parts) > 1:
        return r"[\s-]?".join(lemma(p) for p in parts if p)
    if len(word) >= 7:
        return re.escape(word[:len(word) - 3]) + r"\w*"
    if len(word) >= 5 and word.endswith(("s", "y", "e")):
        return re.escape(word[:-1]) + r"\w*"
    return re.escape(word) + r"(?:s|es|ed|ing)?"


def lemma_key(word: str) -> str:
    """Plain text every match of lemma(word) starts with (for a quick test before the regex)."""
    word = word.lower().strip("-")
    first = word.split("-")[0]
    if len(first) >= 7:
        return first[:len(first) - 3]
    if len(first) >= 5 and first.endswith(("s", "y", "e")):
        return first[:-1]
    return first


def has_word(text: str, word: str) -> bool:
    """True when text (lower case) has the word with any ending, at the start of a word."""
    return re.search(rf"(?<![\w]){lemma(word)}(?![\w])", text) is not None


def content_words(phrase: str) -> list[str]:
    """The telling words of a phrase: no general English, no numbers, no one- or two-letter words."""
    return [w for w in re.findall(r"[a-z][a-z0-9+]*(?:-[a-z0-9]+)*", phrase.lower())
            if w not in _GENERIC and len(w) >= 3]


@dataclass(frozen=True)
class Synonyms:
    """Groups of words a pack says mean the same ("hyaluronic acid" = "sodium hyaluronate")."""

    groups: tuple[tuple[str, ...], ...] = ()

    def variants(self, phrase: str) -> list[str]:
        """The phrase and each form a synonym group gives it."""
        low = phrase.lower()
        out = [low]
        for group in self.groups:
            for word in group:
                if word in low:
                    out += [low.replace(word, other) for other in group if other != word]
        return list(dict.fromkeys(out))


def in_facts(phrase: str, facts_text: str, synonyms: Synonyms) -> bool:
    """True when the phrase (hyphens and spaces alike, synonyms allowed) is in the facts."""
    flat = facts_text.replace("-", " ")
    return any(" ".join(v.replace("-", " ").split()) in flat for v in synonyms.variants(phrase))


def words_in_facts(words: Iterable[str], facts_text: str, synonyms: Synonyms) -> bool:
    """True when every word (any ending, or a synonym) is in the facts."""
    return all(any(has_word(facts_text, v) or v in facts_text for v in synonyms.variants(w)) for w in words)


# -- spec lines as attribute: value ---------------------------------------------------------------
@dataclass(frozen=True)
class SpecFact:
    """One spec line read as attribute: value, with a pattern for mentions of the attribute."""

    line: str
    value: str
    pattern: re.Pattern[str]
    says_no: bool
    key: str = ""  # plain text every mention contains


def spec_facts(specs: Mapping[str, str]) -> tuple[SpecFact, ...]:
    """The yes/no spec lines ("Induction: no", "Dishwasher safe: yes") as facts about their attribute."""
    out = []
    for name, value in specs.items():
        low = value.strip().lower()
        if low not in NO_VALUES and low not in YES_VALUES:
            continue
        words = content_words(name)
        if not words:
            continue
        # "Offline mode" is mentioned as "offline"; "Mobile app" needs both words.
        key = words[:1] if "-" in words[0] or len(words) == 1 or len(words[0]) >= 7 else words
        body = r"(?:\s+\w+){0,2}?\s+".join(lemma(w) for w in key)
        out.append(SpecFact(f"{name}: {value.strip()}", low, re.compile(rf"(?<![\w-]){body}(?![\w])"),
                            low in NO_VALUES, lemma_key(key[0])))
    return tuple(out)


# -- not_true phrases as word rules ---------------------------------------------------------------
@dataclass(frozen=True)
class WordRule:
    """A not_true phrase read as word rules: any one alternative, all its words, in one sentence."""

    item: str
    alternatives: tuple[tuple[str, ...], ...]
    only: tuple[str, str] | None = None  # "cold wash only": ("cold", "wash")
    bounded: bool = False  # "not for babies under 6 months": a sentence with a figure is the limit's to read

    @property
    def fact(self) -> str:
        return f'not_true says "{self.item}"'


_NEGATION = re.compile(r"^(?:do not|does not|don't|doesn't|is not|are not|not|no|never|cannot|can't)\s+")
_PURPOSE_LEAD = re.compile(r"^(?:(?:an?|the)\s+)?(?:suitable\s+|designed\s+|intended\s+|recommended\s+|safe\s+|"
                           r"meant\s+|available\s+|compatible\s+)?(?:for|on|with|in)\s+(?:use\s+)?"
                           r"(?:(?:with|while|during|on|in|by|when)\s+)?")
_BOUND = re.compile(r"\b(?:under|over|below|above|more than|less than|beyond|exceeding|older than|younger than)\b")
_SPLIT = re.compile(r",|\bsuch as\b|\bor\b|\band\b|\bincluding\b|\blike\b|\be\.g\.")


def _alternative(words: list[str], purpose: bool) -> tuple[str, ...]:
    if len(words) >= 2 and "-" in words[0]:
        return (words[0],)  # "real-time data", "on-premise version": the hyphenated word tells
    if purpose and len(words) >= 2:
        return tuple(words[:-1])  # "not for sensitive skin", "not for metal utensils": the modifier tells
    return tuple(words)


def word_rule(item: str) -> WordRule | None:
    """Read one not_true phrase as word rules (None when it has no telling words)."""
    low = " ".join(item.lower().split())
    if re.search(r"\d-?[a-z]", low) or re.search(r"\b(?:included|supplied|provided)$", low) \
            or (re.match(r"^(?:do|does)\s+not\b", low) and _BOUND.search(low)):
        return None  # "4-season", what is in the box and "does not sleep more than 2" are read by the limits
    only = re.match(r"^([a-z-]+)\s+([a-z-]+)\s+only$", low)
    if only:
        return WordRule(item, (), (only.group(1), only.group(2)))
    negation = _NEGATION.match(low)
    if negation:
        rest = low[negation.end():]
        verb = re.match(r"^(?:do not|does not|don't|doesn't)", low)
        if verb:
            parts = rest.split()
            if parts and parts[0] in ("contain", "include", "come"):
                return None  # read by the limits (what is in it or in the box)
            if len(content_words(" ".join(parts[1:]))) >= 2:
                rest = " ".join(parts[1:])  # "does not remove waterproof make-up": what it acts on tells
        purpose_lead = _PURPOSE_LEAD.match(rest)
        purpose = bool(purpose_lead and purpose_lead.end() > 0)
        rest = rest[purpose_lead.end():] if purpose_lead else rest
    else:
        x_not_y = re.match(r"^(.+?)\s+(?:is\s+|are\s+)?not\s+(.+)$", low)
        if not x_not_y:
            return None
        # "cover not microwave safe": what it is not, and what is not, in one sentence
        words = content_words(x_not_y.group(2))
        if not words:
            return None
        return WordRule(item, ((*words, *content_words(x_not_y.group(1))),))
    bound = _BOUND.search(rest)
    if bound:
        rest = rest[:bound.start()]
    alternatives = []
    for part in _SPLIT.split(rest):
        words = content_words(part)
        if words:
            alternatives.append(_alternative(words, purpose))
    if not alternatives:
        return None
    return WordRule(item, tuple(dict.fromkeys(alternatives)), bounded=bound is not None)


def mentions(rule: WordRule, lowered: str) -> bool:
    """True when the text names what the rule is about at all, denied or not ("it has no eco certification")."""
    words = [rule.only[1]] if rule.only else [a[0] for a in rule.alternatives]
    return any(has_word(lowered, w) for w in words)


def _word_pattern(word: str, synonyms: Synonyms) -> str:
    """A regex for a word with any ending, or any of its synonyms from the pack."""
    return "(?:" + "|".join(lemma(v) for v in synonyms.variants(word)) + ")"


def rule_spans(rule: WordRule, masked: str, lowered: str, synonyms: Synonyms = Synonyms()) -> list[tuple[int, int]]:
    """Where the copy says what the rule denies, not itself denied: (start, end) of each stretch."""
    out: list[tuple[int, int]] = []
    if rule.only is not None:
        keep, head = rule.only
        if lemma_key(head) not in lowered:
            return out
        for m in re.finditer(rf"(?<![\w-])([a-z]+)[\s-]+{lemma(head)}(?![\w])", lowered):
            before = m.group(1)
            if before != keep and before not in _STOP_BEFORE and before not in _GENERIC \
                    and not negated(masked, m.start(), m.end()):
                out.append(m.span())
        return out
    for alternative in rule.alternatives:
        if not any(lemma_key(v) in lowered for v in synonyms.variants(alternative[0])):
            continue
        first = re.compile(rf"(?<![\w-]){_word_pattern(alternative[0], synonyms)}(?![\w])")
        for m in first.finditer(lowered):
            sentence = sentence_at(lowered, m.start())
            if rule.bounded and re.search(r"\d", sentence):
                continue
            # Where that sentence starts: its last occurrence that begins at or before the match (an end
            # bound of m.start() + 1 could never hold the whole sentence, and -1 stretched the claim to the
            # top of the text, hiding every other claim behind it).
            offset = lowered.rfind(sentence, 0, m.start() + len(sentence)) if sentence else -1
            start, end = m.start(), m.end()
            ok = offset >= 0 or len(alternative) == 1
            for word in alternative[1:] if offset >= 0 else ():
                other = re.search(rf"(?<![\w-]){_word_pattern(word, synonyms)}(?![\w])", sentence)
                if other is None:
                    ok = False
                    break
                start, end = min(start, offset + other.start()), max(end, offset + other.end())
            if ok and not negated(masked, m.start(), m.end()):
                out.append((start, end))
    return out


# -- compound and purpose claims ------------------------------------------------------------------
@dataclass(frozen=True)
class FormClaim:
    """A claim found by a general form: where it is, whether the facts support it, and why."""

    text: str
    start: int
    end: int
    supported: bool
    fact: str


_NON = re.compile(r"(?i)\b(non)(?=-?[a-z])")


@lru_cache(maxsize=256)
def plain_for_negation(masked: str) -> str:
    """The text with "non-" prefixes blunted, so "non-comedogenic and fragrance-free" denies nothing after it."""
    return _NON.sub("nxn", masked) if "non" in masked.lower() else masked


def other_claims(masked: str, lowered: str, facts_text: str, synonyms: Synonyms) -> list[FormClaim]:
    """"non-X" and "anti-X", warranties and guarantees, and where it is made: each must be in the row."""
    out: list[FormClaim] = []
    plain = plain_for_negation(masked)
    for m in (_PREFIXED.finditer(lowered) if "non" in lowered or "anti" in lowered else ()):
        if re.search(r"\bnot\s+$", lowered[max(0, m.start() - 5):m.start()]):
            continue  # "not non-comedogenic": the copy denies it (the not_true rules read that)
        supported = in_facts(m.group(), facts_text, synonyms) or in_facts(m.group().replace("-", ""), facts_text,
                                                                          synonyms)
        out.append(FormClaim(masked[m.start():m.end()], m.start(), m.end(), supported,
                             "in the facts" if supported else NOT_IN_FACTS))
    for m in (_PROMISE.finditer(lowered) if "warrant" in lowered or "guarant" in lowered else ()):
        if negated(plain, m.start(), m.end()):
            continue
        supported = bool(re.search(r"warrant|guarant", facts_text)) and in_facts(m.group(), facts_text, synonyms) \
            if m.group() != m.group().split()[-1] else bool(re.search(r"warrant|guarant", facts_text))
        out.append(FormClaim(masked[m.start():m.end()], m.start(), m.end(), supported,
                             "in the facts" if supported else NOT_IN_FACTS))
    origins = [*_ORIGIN.finditer(masked)] if " in " in lowered and any(v in lowered for v in _ORIGIN_VERBS) else []
    for m in [*origins, *(_HAND.finditer(lowered) if "hand" in lowered else ())]:
        said = m.group(1).lower() if m.re is _ORIGIN else m.group()
        supported = in_facts(said, facts_text, synonyms)
        out.append(FormClaim(masked[m.start():m.end()], m.start(), m.end(), supported,
                             "in the facts" if supported else NOT_IN_FACTS))
    return out


@dataclass(frozen=True)
class SpecFigure:
    """A spec line with figures ("SPF: 30"), and a pattern for its name followed by a figure in copy."""

    name: str
    value: str
    key: str
    numbers: tuple[float, ...]
    dims: frozenset[str]
    pattern: re.Pattern[str]


def spec_figures(specs_all: Mapping[str, str], quantities_of) -> tuple[SpecFigure, ...]:
    """The spec lines whose value has a figure, read once per product."""
    out = []
    for name, value in specs_all.items():
        known = quantities_of(value)
        words = re.findall(r"[a-z0-9]+", name.lower())
        if not known or not words:
            continue
        body = r"[\s-]+".join(map(re.escape, words))
        out.append(SpecFigure(name, value, words[0], tuple(q.value for q in known),
                              frozenset(q.dim for q in known if q.dim),
                              re.compile(rf"(?<![\w-]){body}\s*:?\s*(\d+(?:[.,]\d+)?)(?![\d.])")))
    return tuple(out)


def spec_number_claims(lowered: str, figures: Iterable[SpecFigure], quantities_of) -> list[FormClaim]:
    """"SPF 50" when the row says "SPF: 30": a figure right after a spec's name must be that spec's figure."""
    out = []
    for figure in figures:
        if figure.key not in lowered:
            continue
        name, value, numbers, dims = figure.name, figure.value, figure.numbers, figure.dims
        for m in figure.pattern.finditer(lowered):
            said = float(m.group(1).replace(",", ""))
            read = quantities_of(lowered[m.start(1):m.start(1) + 24])
            if dims and read and read[0].dim and read[0].dim not in dims:
                continue  # "fabric weight 200 g/m2" is not the weight in grams
            supported = any(abs(said - n) < 1e-9 for n in numbers)
            out.append(FormClaim(m.group(), m.start(), m.end(), supported,
                                 f"in the facts ({name}: {value})" if supported
                                 else f"the facts give {value} for the {name}"))
    return out


def compound_claims(masked: str, lowered: str, facts_text: str, certifications: str, specs: tuple[SpecFact, ...],
                    synonyms: Synonyms) -> list[FormClaim]:
    """"BPA-free", "dishwasher safe", "HIPAA compliant", "dermatologist tested" and the like."""
    out: list[FormClaim] = []
    if not any(key in lowered for key in _SUFFIX_KEYS):
        return out
    for m in _COMPOUND.finditer(lowered):
        x, suffix = m.group(1), m.group(2)
        if x in _STOP_BEFORE or x in _GENERIC or x[0].isdigit() or (suffix == "free" and x in _OPINION_FREE):
            continue
        phrase = m.group()
        spec = next((s for s in specs if s.pattern.search(phrase)), None)
        if spec is not None and spec.says_no:
            supported, fact = False, f'the product facts say "{spec.line}"'
        elif in_facts(phrase, facts_text, synonyms) or (spec is not None and not spec.says_no):
            supported, fact = True, "in the facts"
        elif suffix in ("certified", "approved", "compliant") and words_in_facts([x], certifications, synonyms):
            supported, fact = True, "in its certifications"
        else:
            supported, fact = False, NOT_IN_FACTS
        if negated(plain_for_negation(masked), m.start(), m.end()):
            if supported:
                out.append(FormClaim(masked[m.start():m.end()], m.start(), m.end(), False, DENIES_A_FACT))
            continue
        out.append(FormClaim(masked[m.start():m.end()], m.start(), m.end(), supported, fact))
    return out


def _object_words(text: str) -> str:
    stop = _OBJECT_STOP.search(text)
    return text[:stop.start()] if stop else text


def purpose_claims(masked: str, lowered: str, facts_text: str, specs_all: Mapping[str, str],
                   synonyms: Synonyms, vague: frozenset[str] = frozenset()) -> list[FormClaim]:
    """"Suitable for X", "safe to use during X", "works on X", "runs on X", "for X skin", "made with X" and the
    like (vague words such as "quality" or "care" are no claim)."""
    out = []
    found = [(m, _object_words(m.group(1))) for m in _PURPOSE.finditer(lowered)]
    found += [(m, _object_words(m.group(1))) for m in _MADE_OF.finditer(lowered)]
    found += [(m, m.group(1)) for m in _OFFLINE.finditer(lowered)]
    found += [(m, m.group(1)) for m in _FOR_WHOM.finditer(lowered)]
    for m, obj in found:
        words = [w for w in content_words(obj) if w not in vague]
        if not words:
            continue
        end = m.start(1) + len(obj.rstrip(" ,"))
        universal = any(w in _UNIVERSAL for w in obj.split())
        if universal:  # "for every skin type": a spec of that name must say all
            supported = any(words[0] in name.lower() and value.strip().lower().startswith(("all", "every", "any"))
                            for name, value in specs_all.items())
        else:
            supported = in_facts(" ".join(words), facts_text, synonyms) or words_in_facts(words, facts_text, synonyms)
        if negated(plain_for_negation(masked), m.start(), end):
            continue
        out.append(FormClaim(masked[m.start():end], m.start(), end, supported,
                             "in the facts" if supported else NOT_IN_FACTS))
    return out
