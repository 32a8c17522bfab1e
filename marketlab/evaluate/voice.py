"""The brand voice as typed records: limits, banned words, claims that need proof, disclaimers, required facts.

    voice = BrandVoice.load()                       # the course's brand_voice.yaml
    voice = BrandVoice.from_dict(data.load_brand_voice("graders/holdout"))
    voice.limits("web").max_words                   # 120
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from marketlab.tables import is_missing, split_list

from .errors import EvaluateInputError

_NUMBER = re.compile(r"[-+−]?\d+(?:\.\d+)?")


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


def product_specs(product: Mapping[str, Any] | None) -> dict[str, str]:
    """A product's key_specs ("Name: value unit; ...") as {name: "value unit"}."""
    out: dict[str, str] = {}
    for part in split_list((product or {}).get("key_specs")):
        name, sep, value = part.partition(":")
        if sep:
            out[name.strip()] = value.strip()
    return out


def _first_number(value: str) -> float | None:
    found = _NUMBER.search(value.replace("−", "-"))
    return float(found.group()) if found else None


class Tone(_Record):
    """How the brand sounds, and the limits a hype check reads."""

    words: list[str] = []
    we_are: str = ""
    we_are_not: str = ""
    max_exclamation_marks: int = 1
    max_all_caps_words: int = 0
    jargon_to_avoid: list[str] = []


class ProofCondition(_Record):
    """One way a claim can be proven by a product's facts (a spec value, a certification, a weight)."""

    spec: str | None = None
    min: float | None = None
    max: float | None = None
    unit: str | None = None
    one_of: list[str] | None = None
    certification_any: list[str] | None = None
    weight_g_max_by_category: dict[str, float] | None = None

    def holds(self, product: Mapping[str, Any]) -> bool:
        """True when this product's facts meet the condition."""
        if self.certification_any is not None:
            have = {c.lower() for c in split_list(product.get("certifications"))}
            return any(c.lower() in have for c in self.certification_any)
        if self.weight_g_max_by_category is not None:
            limit = self.weight_g_max_by_category.get(str(product.get("category", "")))
            weight = product.get("weight_g")
            return limit is not None and weight is not None and not is_missing(weight) and float(weight) <= limit
        if self.spec is None:
            return False
        value = product_specs(product).get(self.spec)
        if value is None:
            return False
        if self.one_of is not None:
            return value.strip().lower() in {v.lower() for v in self.one_of}
        number = _first_number(value)
        if number is None:
            return False
        return (self.min is None or number >= self.min) and (self.max is None or number <= self.max)


class ProofRule(_Record):
    """A claim word that may be used only when the product's facts prove it (or, with source_column, a
    column whose phrases are all false for the product, such as not_true)."""

    claim: str
    trigger_words: list[str] = []
    allowed_if_any: list[ProofCondition] = []
    explanation: str = ""
    source_column: str | None = None

    def allowed(self, product: Mapping[str, Any]) -> bool:
        """True when at least one condition holds for this product."""
        return any(condition.holds(product) for condition in self.allowed_if_any)


class Disclaimer(_Record):
    """Text that copy must carry in some channels for some categories."""

    id: str
    text: str
    categories: list[str] = []
    channels: list[str] = []
    when_spec_present: str | None = None

    def applies(self, product: Mapping[str, Any] | None, channel: str) -> bool:
        """True when copy for this product in this channel must contain the disclaimer."""
        if product is None or channel not in self.channels:
            return False
        if str(product.get("category", "")) not in self.categories:
            return False
        return self.when_spec_present is None or self.when_spec_present in product_specs(product)


class RequiredFacts(_Record):
    """What every piece of copy must mention: the product name everywhere, the first key spec in some channels."""

    all_channels: list[str] = ["product_name"]
    first_key_spec_channels: list[str] = []


class LengthLimit(_Record):
    """A channel's hard length limits (None: no limit of that kind)."""

    min_words: int | None = Field(None, ge=0)
    max_words: int | None = Field(None, ge=1)
    max_chars: int | None = Field(None, ge=1)


class BrandVoice(_Record):
    """brand_voice.yaml as one typed value."""

    brand: str = ""
    version: Any = None
    tone: Tone = Tone()
    banned_words: list[str] = []
    claims_requiring_proof: list[ProofRule] = []
    required_disclaimers: list[Disclaimer] = []
    required_facts: RequiredFacts = RequiredFacts()
    length_limits: dict[str, LengthLimit] = {}
    channels: list[str] = []

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BrandVoice:
        """Build from the dict that marketlab.data.load_brand_voice() returns."""
        if not isinstance(data, Mapping):
            raise EvaluateInputError(f"The brand voice is a {type(data).__name__}, not a dict.",
                                     "Pass data.load_brand_voice() (or BrandVoice.load()).")
        try:
            return cls.model_validate(dict(data))
        except ValidationError as err:
            item = err.errors(include_url=False)[0]
            where = ".".join(str(p) for p in item.get("loc", ()))
            raise EvaluateInputError(f"The brand voice's '{where}' is not valid: {item.get('msg')}.",
                                     "Compare that section with datasets/brand_voice.yaml and correct it.") from None

    @classmethod
    def load(cls, directory: str | Path | None = None) -> BrandVoice:
        """The brand voice in a data folder (default: the course's datasets)."""
        from marketlab import data

        return cls.from_dict(data.load_brand_voice(directory))

    def limits(self, channel: str) -> LengthLimit:
        """The length limits of a channel; an unknown channel is an error that lists the known ones."""
        try:
            return self.length_limits[channel]
        except KeyError:
            raise EvaluateInputError(f"The channel '{channel}' has no length limits in the brand voice.",
                                     f"Use one of: {', '.join(self.length_limits)} (column 'channel').") from None

    def proof_rules(self) -> list[ProofRule]:
        """The claims that need proof from the facts (trigger words and conditions), not_true excluded."""
        return [rule for rule in self.claims_requiring_proof if rule.source_column is None]


_COURSE: BrandVoice | None = None


def as_voice(voice: BrandVoice | Mapping[str, Any] | str | Path | None = None) -> BrandVoice:
    """A BrandVoice from a BrandVoice, the yaml dict, a data folder, or None (the course's)."""
    global _COURSE
    if isinstance(voice, BrandVoice):
        return voice
    if voice is None:
        if _COURSE is None:
            _COURSE = BrandVoice.load()
        return _COURSE
    if isinstance(voice, (str, Path)):
        return BrandVoice.load(voice)
    return BrandVoice.from_dict(voice)
