"""Deterministic checks on one text: length, banned words, required facts, repetition, hype, disclaimers, JSON.

A check is any object with `name`, `defect` (the defect kind it is meant to catch, or None),
`describe` (one plain sentence) and `__call__(text, product, channel) -> Finding`. Write your own
from a plain function with make_check:

    def no_exclamation(text, product, channel):
        return "has an exclamation mark" if "!" in text else None

    check = make_check("no_exclamation", no_exclamation, describe="No exclamation marks at all.")
    check("Great!", None, "web")            # Finding(passed=False, evidence='has an exclamation mark')
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

from marketlab.tables import is_missing

from . import text as txt
from .errors import EvaluateInputError
from .units import quantities, same_quantity
from .voice import BrandVoice, Disclaimer, LengthLimit, Tone, as_voice, product_specs

Product = Mapping[str, Any]
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Finding:
    """The outcome of one check on one text: passed, failed (with the offending text as evidence), or
    unchecked (the check found nothing it could check; never counted as passed, so `passed` is False)."""

    passed: bool
    evidence: str = ""
    unchecked: bool = False

    @property
    def outcome(self) -> str:
        """"passed", "failed" or "unchecked"."""
        return "unchecked" if self.unchecked else "passed" if self.passed else "failed"


PASSED = Finding(True)


@runtime_checkable
class Check(Protocol):
    """What run_checks and run_batch call: a name, the defect it catches, a sentence, and the call itself."""

    @property
    def name(self) -> str: ...
    @property
    def defect(self) -> str | None: ...
    @property
    def describe(self) -> str: ...  # read-only: the built-in checks are frozen dataclasses

    def __call__(self, text: str, product: Product | None, channel: str) -> Finding: ...


def quote(found: Iterable[str]) -> str:
    """'"a", "b"': the words a check found, each quoted once, in order."""
    return ", ".join(f'"{w}"' for w in dict.fromkeys(found))


@dataclass(frozen=True)
class FunctionCheck:
    """A check made from a plain function fn(text, product, channel) -> evidence (None or "" when it passes)."""

    name: str
    fn: Callable[[str, Product | None, str], str | None]
    defect: str | None = None
    describe: str = ""

    def __call__(self, text: str, product: Product | None, channel: str) -> Finding:
        evidence = self.fn(text, product, channel)
        if evidence is None or evidence is False or evidence == "":
            return PASSED
        return Finding(False, evidence if isinstance(evidence, str) else str(evidence))


def make_check(name: str, fn: Callable[[str, Product | None, str], str | None], defect: str | None = None,
               describe: str = "") -> FunctionCheck:
    """Turn fn(text, product, channel) -> None (pass) or the evidence (fail) into a check named `name`."""
    if not isinstance(name, str) or not NAME.match(name):
        raise EvaluateInputError(f"The check name {name!r} cannot be a column name.",
                                 "Use letters, digits and underscores only, e.g. 'no_exclamation'.")
    if not callable(fn):
        raise EvaluateInputError(f"make_check('{name}', ...) got a {type(fn).__name__}, not a function.",
                                 "Pass a function that takes (text, product, channel) and returns None or the "
                                 "evidence, e.g. def my_check(text, product, channel): ...")
    return FunctionCheck(name, fn, defect, describe or f"Your own check '{name}'.")


def check_list(checks: Any) -> list[Check]:
    """The checks as a list, each one checked to be usable, names unique (a clear error otherwise)."""
    if isinstance(checks, (str, bytes)) or not isinstance(checks, Iterable):
        raise EvaluateInputError(f"checks is a {type(checks).__name__}, not a list of checks.",
                                 "Pass a list such as [length(), banned_words()] or DEFAULT_CHECKS.")
    out = list(checks)
    seen: set[str] = set()
    for position, check in enumerate(out):
        name = getattr(check, "name", None)
        if callable(check) and not isinstance(name, str) and getattr(check, "__module__", "").startswith(__name__):
            # the check's maker itself, not a check it made: `required_facts` where `required_facts()` was meant
            raise EvaluateInputError(f"Item {position + 1} of checks is {check.__name__}, which makes a check; it is "
                                     "not one yet.", f"Add the brackets: {check.__name__}().")
        if not callable(check) or not isinstance(name, str) or not NAME.match(name):
            raise EvaluateInputError(f"Item {position + 1} of checks ({check!r:.60}) is not a check.",
                                     "Build checks with length(), banned_words(), ... or make_check(name, fn).")
        if name in seen:
            raise EvaluateInputError(f"Two checks are called '{name}'.",
                                     "Give each check its own name: make_check('other_name', fn).")
        seen.add(name)
    return out


# -- length --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LengthCheck:
    """Within the channel's word and character limits."""

    limits: Mapping[str, LengthLimit]
    name: str = "length"
    defect: str | None = "over_length"
    describe: str = "Within the channel's length limits in the brand voice (words or characters)."

    def __call__(self, text: str, product: Product | None, channel: str) -> Finding:
        limit = self.limits.get(channel)
        if limit is None:
            return Finding(False, f"no length limits for the channel '{channel}'")
        if limit.max_chars is not None and txt.char_count(text) > limit.max_chars:
            return Finding(False, f"{txt.char_count(text)} characters, {channel} allows {limit.max_chars}")
        if limit.max_words is not None or limit.min_words is not None:
            words = txt.word_count(text)
            if limit.max_words is not None and words > limit.max_words:
                return Finding(False, f"{words} words, {channel} allows {limit.max_words}")
            if limit.min_words is not None and words < limit.min_words:
                return Finding(False, f"{words} words, {channel} needs at least {limit.min_words}")
        return PASSED


def length(voice: BrandVoice | Mapping[str, Any] | None = None) -> LengthCheck:
    """Check each text against its channel's length limits (default: the course brand voice)."""
    return LengthCheck(dict(as_voice(voice).length_limits))


# -- banned words ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class BannedWordsCheck:
    """None of the banned words or phrases, as whole words, in any case."""

    words: tuple[str, ...]
    name: str = "banned_words"
    defect: str | None = "banned_word"
    describe: str = "Uses none of the brand voice's banned words or phrases."
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", txt.phrase_pattern(self.words))

    def __call__(self, text: str, product: Product | None, channel: str) -> Finding:
        found = self.pattern.findall(text) if self.pattern is not None else []
        return Finding(False, quote(w.lower() for w in found)) if found else PASSED


def banned_words(words: Iterable[str] | BrandVoice | Mapping[str, Any] | None = None) -> BannedWordsCheck:
    """Check that no banned word is used (a list of words, or a brand voice; default: the course's)."""
    if words is None or isinstance(words, (BrandVoice, Mapping)):
        words = as_voice(words).banned_words
    if isinstance(words, str):
        raise EvaluateInputError("banned_words() got one string, not a list of words.",
                                 f"Write banned_words([{words!r}]).")
    return BannedWordsCheck(tuple(str(w) for w in words))


# -- required facts -------------------------------------------------------------------------------
def has_value(text: str, value: str, spec_name: str, squashed: str | None = None) -> bool:
    """True when the text gives a spec's value ("45 L"; "1320 g" for "1.32 kg"; the spec's name for "yes")."""
    squashed = txt.squash(text) if squashed is None else squashed
    if value.strip().lower() in ("yes", "no", "true", "false", "included", "not included"):
        return txt.squash(spec_name) in squashed  # "Waterproof membrane: yes": the copy names the spec
    wanted = txt.squash(value)
    at = squashed.find(wanted)
    while at >= 0:  # "8mm" inside "28mm" is not the value
        if at == 0 or not (squashed[at - 1].isdigit() or squashed[at - 1] in ".-"):
            return True
        at = squashed.find(wanted, at + 1)
    needed = quantities(value)
    if not needed:
        return False
    found = quantities(text)
    return all(any(same_quantity(q, f) for f in found) for q in needed)


@dataclass(frozen=True)
class RequiredFactsCheck:
    """The product name, and the first key spec in the channels that need it."""

    name_channels: tuple[str, ...] | None  # None: every channel
    spec_channels: tuple[str, ...]
    name: str = "required_facts"
    defect: str | None = "missing_required_fact"
    describe: str = "Names the product, and gives its headline spec (the first key spec) where the channel needs it."

    def __call__(self, text: str, product: Product | None, channel: str) -> Finding:
        if product is None:
            return Finding(False, "no product facts to compare with")
        missing = []
        squashed = txt.squash(text)
        name = str(product.get("name", "")).strip()
        if name and (self.name_channels is None or channel in self.name_channels) \
                and txt.squash(name) not in squashed:
            missing.append(f'no product name ("{name}")')
        if channel in self.spec_channels:
            spec, value = _first_spec(str(product.get("key_specs", "")))
            if spec and not has_value(text, value, spec, squashed):
                missing.append(f'no headline spec ("{spec}: {value}")')
        return Finding(False, "; ".join(missing)) if missing else PASSED


@lru_cache(maxsize=4096)
def _first_spec(key_specs: str) -> tuple[str, str]:
    specs = list(product_specs({"key_specs": key_specs}).items())
    return specs[0] if specs else ("", "")


def required_facts(voice: BrandVoice | Mapping[str, Any] | None = None) -> RequiredFactsCheck:
    """Check that the product name and the headline spec are in the copy (channels from the brand voice)."""
    rule = as_voice(voice).required_facts
    everywhere = "product_name" in rule.all_channels
    return RequiredFactsCheck(None if everywhere else (), tuple(rule.first_key_spec_channels))


# -- repetition -----------------------------------------------------------------------------------
# Words English doubles on purpose ("that that", "had had").
_FINE_DOUBLES = frozenset({"that", "had"})
_WORD_RUN = re.compile(r"[A-Za-z][A-Za-z']*")


def stutter(text: str) -> str | None:
    """The first stuttered word: one word three times in a row ("really, really, really"), or twice with
    only a space between ("the the"); None when there is none."""
    plain = [t.strip(",;.!-").lower() for t in text.split()]
    if not any(a == b and a for a, b in zip(plain, plain[1:])):  # the quick test: no word twice in a row
        return None
    words = list(_WORD_RUN.finditer(text))
    run_start = 0
    for i in range(1, len(words) + 1):
        same = i < len(words) and words[i].group().lower() == words[i - 1].group().lower() \
            and text[words[i - 1].end():words[i].start()].strip(" ,;.!-") == ""
        if same:
            continue
        run = i - run_start
        first, last = words[run_start], words[i - 1]
        between = text[first.end():words[run_start + 1].start()] if run > 1 else ""
        if run >= 3 or (run == 2 and between.isspace() and first.group().lower() not in _FINE_DOUBLES):
            return text[first.start():last.end()]
        run_start = i
    return None


@dataclass(frozen=True)
class RepetitionCheck:
    """No sentence or bullet said twice, no word stuttered."""

    min_words: int = 3  # sentences shorter than this ("Tap to shop.") may repeat
    name: str = "repetition"
    defect: str | None = "repetition"
    describe: str = "Says no sentence or bullet twice and stutters no word (\"really, really, really\")."

    def __call__(self, text: str, product: Product | None, channel: str) -> Finding:
        problems = []
        seen: set[str] = set()
        for sentence in txt.sentences(text):
            key = txt.normalise(sentence)
            if len(key.split()) < self.min_words:
                continue
            if key in seen:
                problems.append(f'repeats "{sentence}"')
            seen.add(key)
        stuttered = stutter(text)
        if stuttered:
            problems.append(f'stutters "{stuttered}"')
        return Finding(False, "; ".join(dict.fromkeys(problems))) if problems else PASSED


def repetition(min_words: int = 3) -> RepetitionCheck:
    """Check for repeated sentences or bullets (of at least min_words words) and stuttered words."""
    return RepetitionCheck(min_words)


# -- hype -----------------------------------------------------------------------------------------
_CAPS = re.compile(r"(?<![\w'-])[A-Z][A-Z'’]+(?![\w'-])")
_RUN = re.compile(r"[!?]{2,}")
# Capitals that are codes or units, not shouting (the brand voice: "units and standard codes do not count").
STANDARD_CODES = frozenset({
    "AA", "AAA", "ABS", "CE", "DWR", "EN", "EU", "EVA", "FAQ", "FSC", "GPS", "GRS", "ID", "ISO", "LED", "LCD",
    "PET", "PFC", "PFAS", "PU", "PVC", "RDS", "SPF", "TPU", "UK", "UL", "UPF", "US", "USA", "USB", "UV", "XL",
    "XS", "XXL", "YKK", "OK",
})


def _caps_in(values: Iterable[Any]) -> set[str]:
    return {word for value in values if not is_missing(value) for word in _CAPS.findall(str(value))}


@lru_cache(maxsize=4096)
def _product_caps(values: tuple[str, ...]) -> frozenset[str]:
    """Capitals in a product's own facts ("WP" in a name, "DWR" in a spec): not shouting."""
    return frozenset(_caps_in(values))


@dataclass(frozen=True)
class HypeCheck:
    """No shouting: few exclamation marks, no '!!', no words in capitals, no corporate jargon."""

    tone: Tone
    allowed_caps: frozenset[str] = STANDARD_CODES
    name: str = "hype"
    defect: str | None = "wrong_tone"
    describe: str = ("No hype: at most the brand voice's exclamation marks, no '!!' or '??', no words in capitals "
                     "(codes and units excepted), no corporate jargon. It cannot hear slang.")
    jargon: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Jargon is matched as a word start: "leverage" also finds "leverages" and "leveraging".
        words = sorted(self.tone.jargon_to_avoid, key=len, reverse=True)
        body = "|".join(r"[\s-]+".join(re.escape(p) for p in re.split(r"[\s-]+", w.strip())) for w in words if w)
        object.__setattr__(self, "jargon", re.compile(rf"(?<!\w)(?:{body})\w*", re.I) if body else None)

    def __call__(self, text: str, product: Product | None, channel: str) -> Finding:
        problems = []
        marks = text.count("!")
        if marks > self.tone.max_exclamation_marks:
            problems.append(f"{marks} exclamation marks, the limit is {self.tone.max_exclamation_marks}")
        run = _RUN.search(text)
        if run:
            problems.append(f'"{run.group(0)}"')
        allowed = self.allowed_caps
        shouted = [w for w in _CAPS.findall(text) if w not in allowed and w.strip("'’") not in allowed]
        if shouted and product is not None:
            own = _product_caps(tuple(str(v) for v in product.values()))
            shouted = [w for w in shouted if w not in own and w.strip("'’") not in own]
        if len(shouted) > self.tone.max_all_caps_words:
            problems.append(f"capitals: {quote(shouted)}")
        jargon = self.jargon.findall(text) if self.jargon is not None else []
        if jargon:
            problems.append(f"jargon: {quote(j.lower() for j in jargon)}")
        return Finding(False, "; ".join(problems)) if problems else PASSED


def hype(voice: BrandVoice | Mapping[str, Any] | None = None) -> HypeCheck:
    """Check for hype (exclamation marks, capitals, jargon from the brand voice); slang gets past it."""
    chosen = as_voice(voice)
    voice_text = [d.text for d in chosen.required_disclaimers] + [r.explanation for r in chosen.claims_requiring_proof]
    return HypeCheck(chosen.tone, STANDARD_CODES | _caps_in(voice_text))


# -- disclaimers ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DisclaimersCheck:
    """Every disclaimer the brand voice requires for this product and channel, word for word."""

    disclaimers: tuple[Disclaimer, ...]
    name: str = "disclaimers"
    defect: str | None = None
    describe: str = "Carries every disclaimer the brand voice requires for the product's category and the channel."

    def __call__(self, text: str, product: Product | None, channel: str) -> Finding:
        have = txt.normalise(text)
        missing = [d for d in self.disclaimers if d.applies(product, channel) and txt.normalise(d.text) not in have]
        if not missing:
            return PASSED
        return Finding(False, "; ".join(f'no {d.id} disclaimer ("{d.text}")' for d in missing))


def disclaimers(voice: BrandVoice | Mapping[str, Any] | None = None) -> DisclaimersCheck:
    """Check that the required disclaimers are there (default: the course brand voice)."""
    return DisclaimersCheck(tuple(as_voice(voice).required_disclaimers))


# -- valid JSON -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ValidJsonCheck:
    """The text is one JSON value (and, with a schema, valid against it)."""

    schema: Mapping[str, Any] | None = None
    name: str = "valid_json"
    defect: str | None = None
    describe: str = "Is valid JSON, and matches the JSON schema when one is given."

    def __call__(self, text: str, product: Product | None, channel: str) -> Finding:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            return Finding(False, f"not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}")
        if self.schema is None:
            return PASSED
        import jsonschema

        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(self.schema).iter_errors(value))
        if error is None:
            return PASSED
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        return Finding(False, f"does not match the schema at {where}: {error.message}")


def valid_json(schema: Mapping[str, Any] | type | None = None) -> ValidJsonCheck:
    """Check that a text is JSON; with schema (a JSON schema dict or a pydantic model), that it matches it."""
    if schema is not None and hasattr(schema, "model_json_schema"):
        schema = schema.model_json_schema()
    if schema is not None and not isinstance(schema, Mapping):
        raise EvaluateInputError(f"valid_json() got a {type(schema).__name__} as the schema.",
                                 "Pass a JSON schema dict, or a pydantic model class such as ProductCopy.")
    if schema is not None:
        import jsonschema

        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.exceptions.SchemaError as err:
            raise EvaluateInputError(f"The schema given to valid_json() is not a valid JSON schema: {err.message}.",
                                     "Fix the schema, or pass a pydantic model class instead.") from None
    return ValidJsonCheck(dict(schema) if schema is not None else None)

