"""The brand voice guide as YAML text: readable by marketers, parsed by checkers."""

from __future__ import annotations

from string import Template

import yaml

from .common import Company

_TEMPLATE = Template('''\
# Brand voice for $company.
# Human-readable, and machine-checked: marketlab's evaluation code reads this file.
# Synthetic training data (see datasets/cards/brand_voice.md).

brand: $company
version: 3

tone:
  # Words that describe how we sound.
  words: [practical, warm, plain-spoken, confident, outdoorsy]
  we_are: "A knowledgeable friend at the trailhead: specific, honest about limits, never pushy."
  we_are_not: "Hype, corporate jargon, or slang that will date."
  max_exclamation_marks: 1          # per piece of copy
  max_all_caps_words: 0             # units and standard codes (e.g. IPX7, USB-C, DWR) do not count
  jargon_to_avoid: [leverage, synergy, best-of-breed, paradigm, solution-oriented, value proposition]

banned_words:
  # Never use these, in any channel. Match whole words or phrases, case-insensitive.
  - best-in-class
  - revolutionary
  - game-changer
  - game-changing
  - unbeatable
  - world's best
  - indestructible
  - bulletproof
  - military-grade
  - miracle
  - cheap
  - guaranteed
  - 100% waterproof

claims_requiring_proof:
  # A claim word may be used only if at least one condition in allowed_if_any
  # holds for the product. Conditions read the product's key_specs
  # ("Name: value unit") or its certifications.
  - claim: waterproof
    trigger_words: [waterproof, fully waterproof, stormproof]
    allowed_if_any:
      - spec: Hydrostatic head
        min: 1500
        unit: mm
      - spec: Water resistance
        one_of: [IPX7, IPX8]
      - spec: Waterproof membrane
        one_of: ["yes"]
    explanation: "Waterproof needs a hydrostatic head of at least 1500 mm, an IPX7/IPX8 rating, or a waterproof membrane."
  - claim: eco
    trigger_words: [eco, eco-friendly, sustainable, sustainably made, planet-friendly, environmentally friendly]
    allowed_if_any:
      - certification_any: [bluesign approved, Global Recycled Standard, Responsible Down Standard, FSC certified]
    explanation: "Environmental claims need an environmental certification. OEKO-TEX and Fair Trade are not environmental certifications."
  - claim: four-season
    trigger_words: [4-season, four-season, winter-proof, all-season]
    allowed_if_any:
      - spec: Season
        one_of: [4-season]
    explanation: "Only tents whose Season spec is 4-season may be called four-season."
  - claim: ultralight
    trigger_words: [ultralight, featherweight]
    allowed_if_any:
      - weight_g_max_by_category: {tents: 1300, sleeping bags: 800, backpacks: 700, jackets: 300, footwear: 600, cooking: 120, lighting: 70, accessories: 150}
    explanation: "Ultralight only below the category weight threshold (weight_g)."
  - claim: not_true
    # Every phrase in the product's not_true column is false for that product.
    # Copy must not claim the opposite (for example, calling a product waterproof
    # when not_true says "not waterproof").
    source_column: not_true

required_disclaimers:
  # Copy in the listed channels for the listed categories must contain this text.
  - id: temperature_rating
    categories: [sleeping bags]
    channels: [web, marketplace]
    text: "Temperature ratings are lab-tested to EN ISO 23537; how warm you sleep varies."
  - id: stove_safety
    categories: [cooking]
    when_spec_present: Fuel
    channels: [web, marketplace]
    text: "Use stoves outdoors only, away from tents and flammable material."
  - id: battery_life
    categories: [lighting]
    channels: [web, marketplace]
    text: "Battery life measured on the lowest setting."

required_facts:
  # What every piece of copy must mention.
  all_channels: [product_name]
  # The FIRST spec in key_specs (value and unit) must appear in these channels.
  first_key_spec_channels: [web, marketplace, email]

reading_level:
  flesch_reading_ease_min: 60       # plain English; roughly age 13-15
  max_words_per_sentence: 25
  audience: "Adults shopping for outdoor gear; no technical background assumed."

length_limits:
  # Hard limits. A piece over the maximum is "over length".
  web:
    min_words: 40
    max_words: 120
  marketplace:
    max_chars: 700
  email:
    max_words: 80
  social:
    max_chars: 280

channels: [web, marketplace, email, social]
''')


def render(company: Company) -> str:
    """Return the brand voice YAML text for ``company``."""
    return _TEMPLATE.substitute(company=company.name)


def parse(company: Company) -> dict:
    """Return the brand voice as a dict (what the loader returns)."""
    return yaml.safe_load(render(company))
