"""Vocabulary packs: a shop's claim words, the words that support them, and its synonyms, as a YAML file.

The faithfulness check holds only general claim forms ("X-free", "suitable for X", numbers with
units, spec lines, not_true rules). What a shop's copy says in its own words ("crampon compatible",
"fill power") comes from a pack. The course's outdoor-gear pack ships in
marketlab/reference/vocabulary/outdoor.yaml; a company writes its own beside it, or anywhere:

    from marketlab.evaluate import faithfulness, load_vocabulary
    check = faithfulness(vocabulary="outdoor")                    # a pack shipped with marketlab
    check = faithfulness(vocabulary="my_shop.yaml")               # your own file
    check = faithfulness(vocabulary=None)                         # general claim forms only

A pack file:

    name: kitchen
    description: What our kitchen shop's copy claims.
    features:                      # claim (a regex) -> words in the product row that support it (a regex)
      - name: induction
        claim: 'induction(?:[- ]ready)?'
        evidence: 'induction'
    materials: []                  # same shape as features
    synonyms:                      # words that mean the same in this shop's rows and copy
      - [hyaluronic acid, sodium hyaluronate]
    shop_words: [our kitchen team] # sentences with these are about the shop, not the product
    units:                         # units and counted nouns the number reader should know
      - {dimension: capacity_cups, words: [cup, cups]}
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from marketlab.errors import MarketlabError

from .claimwords import Feature

PACKS = Path(__file__).resolve().parent.parent / "reference" / "vocabulary"
COURSE_PACK = "outdoor"


class VocabularyError(MarketlabError, ValueError):
    """A vocabulary pack cannot be found or read."""

    headline = "❌ The vocabulary pack could not be loaded."


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    claim: str = Field(min_length=1)
    evidence: str = ""
    words: list[str] = []

    @field_validator("claim", "evidence")
    @classmethod
    def _is_regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as err:
            raise ValueError(f"{value!r} is not a valid pattern ({err})") from None
        return value


class _Unit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dimension: str = Field(min_length=1)
    factor: float = 1.0
    words: list[str] = Field(min_length=1)
    cased: bool = False


class VocabularyPack(BaseModel):
    """One shop's vocabulary: feature and material claims, synonyms and the words that name the shop."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = ""
    features: list[_Entry] = []
    materials: list[_Entry] = []
    synonyms: list[list[str]] = []
    shop_words: list[str] = []
    units: list[_Unit] = []
    contains_forms: list[str] = []  # more ways to say "contains X", with {stuff} for X: '{stuff}[- ]filled'

    @field_validator("contains_forms")
    @classmethod
    def _forms(cls, value: list[str]) -> list[str]:
        for form in value:
            if "{stuff}" not in form:
                raise ValueError(f"{form!r} has no {{stuff}} where the contained thing goes")
            try:
                re.compile(form.replace("{stuff}", "x"))
            except re.error as err:
                raise ValueError(f"{form!r} is not a valid pattern ({err})") from None
        return value

    @field_validator("synonyms")
    @classmethod
    def _groups(cls, value: list[list[str]]) -> list[list[str]]:
        for group in value:
            if len([w for w in group if str(w).strip()]) < 2:
                raise ValueError(f"the synonym group {group!r} needs at least two words")
        return value

    def feature_list(self) -> tuple[Feature, ...]:
        return tuple(Feature(e.name, e.claim, e.evidence, tuple(e.words)) for e in self.features)

    def material_list(self) -> tuple[Feature, ...]:
        return tuple(Feature(e.name, e.claim, e.evidence, tuple(e.words)) for e in self.materials)


def _line_of(node: yaml.Node | None, loc: Iterable[Any]) -> int | None:
    """The line (1-based) of the YAML node at a pydantic error location."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            found = node.value[key]
        else:
            found = None
        if found is None:
            break
        node, line = found, found.start_mark.line + 1
    return line


def parse_vocabulary(text: str, where: str = "the pack") -> VocabularyPack:
    """Read a pack from YAML text; a clear error names the line that is wrong."""
    fix = ("Compare it with marketlab/reference/vocabulary/outdoor.yaml: name, description, features and "
           "materials (each with name, claim, evidence), synonyms (lists of two or more words), shop_words.")
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise VocabularyError(f"{where}{line}: not valid YAML ({getattr(err, 'problem', None) or err}).",
                              "Check the indentation and quotes on that line (quote patterns in single quotes).") \
            from None
    if not isinstance(data, dict):
        raise VocabularyError(f"{where} line 1: the pack is a {type(data).__name__}, not a set of fields.", fix)
    try:
        return VocabularyPack(**data)
    except ValidationError as err:
        item = err.errors(include_url=False)[0]
        loc = tuple(item.get("loc", ()))
        at = _line_of(node, loc)
        field = ".".join(str(p) for p in loc) or "the pack"
        raise VocabularyError(f"{where} line {at}: {field}: {item.get('msg', 'not valid')}.", fix) from None


@lru_cache(maxsize=32)
def _load_path(path: str, mtime: float) -> VocabularyPack:
    return parse_vocabulary(Path(path).read_text(encoding="utf-8"), path)


def load_vocabulary(pack: str | os.PathLike | VocabularyPack) -> VocabularyPack:
    """A pack by name (one shipped in marketlab/reference/vocabulary/) or by the path of a YAML file."""
    if isinstance(pack, VocabularyPack):
        return pack
    if not isinstance(pack, (str, os.PathLike)):
        raise VocabularyError(f"vocabulary is a {type(pack).__name__}, not a pack name or file.",
                              "Pass a pack name such as 'outdoor', the path of a .yaml file, or None.")
    path = Path(pack)
    if not path.suffix and not path.exists():
        path = PACKS / f"{pack}.yaml"
    if not path.is_file():
        shipped = sorted(p.stem for p in PACKS.glob("*.yaml"))
        raise VocabularyError(f"There is no vocabulary pack {str(pack)!r}.",
                              f"Use one of {shipped} or the path of your own .yaml file.")
    return _load_path(str(path.resolve()), path.stat().st_mtime)


def teach_units(pack: VocabularyPack) -> None:
    """Make the pack's units known to the number reader (they stay known for the rest of the session)."""
    from .units import add_units

    for unit in pack.units:
        add_units(unit.dimension, unit.factor, unit.words, unit.cased)


def load_packs(vocabulary: Any) -> tuple[VocabularyPack, ...]:
    """None -> no pack; a name, path or pack -> that one; a list -> each of them."""
    if vocabulary is None:
        return ()
    packs = tuple(load_vocabulary(p) for p in vocabulary) if isinstance(vocabulary, (list, tuple)) \
        else (load_vocabulary(vocabulary),)
    for pack in packs:
        teach_units(pack)
    return packs
