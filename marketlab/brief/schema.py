"""The Brief: what an AI workflow must do, written down so it can be checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# One direction only: the Brief uses the linter and the message compiler; they never import this module.
from .errors import BriefError
from .lint import LintReport, lint
from .messages import system_prompt, to_messages


class _Section(BaseModel):
    # forbid: a misspelt key ("sorce:") must be reported, not silently dropped
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _listify(value: Any) -> Any:
    """Let a single string stand for a one-item list, which is how people write YAML."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return value


class Objective(_Section):
    """What the workflow produces, and the number that says it worked."""

    statement: str | None = Field(None, description="what the workflow produces and why")
    target: str | None = Field(None, description="a measurable target, e.g. '90% approved without edits'")


class Audience(_Section):
    """Who reads the output and what they care about."""

    who: str | None = None
    needs: list[str] = Field(default_factory=list)

    _lists = field_validator("needs", mode="before")(_listify)


class Input(_Section):
    """One data source the workflow reads."""

    name: str
    source: str | None = Field(None, description="system or file the data comes from")
    owner: str | None = Field(None, description="person or team who keeps it correct")
    freshness: str | None = Field(None, description="how often it is updated, e.g. 'daily'")


class OutputContract(_Section):
    """The shape of every output: format, fields and length."""

    format: str | None = None
    fields: list[str] = Field(default_factory=list)
    min_words: int | None = Field(None, ge=0)
    max_words: int | None = Field(None, ge=1)

    _lists = field_validator("fields", mode="before")(_listify)


class Constraints(_Section):
    """Brand voice, legal rules and claims that must never be made."""

    brand_voice: str | None = None
    banned_claims: list[str] = Field(default_factory=list)
    legal: list[str] = Field(default_factory=list)

    _lists = field_validator("banned_claims", "legal", mode="before")(_listify)


class Budget(_Section):
    """How much, how fast and how expensive."""

    volume: str | None = Field(None, description="e.g. '400 products per week'")
    latency: str | None = Field(None, description="e.g. 'under 10 seconds per product'")
    cost: str | None = Field(None, description="e.g. 'at most $2 per 1,000 products'")


class Monitoring(_Section):
    """How performance is watched after launch."""

    metrics: list[str] = Field(default_factory=list)
    review_cadence: str | None = None

    _lists = field_validator("metrics", mode="before")(_listify)


class Ownership(_Section):
    """Who reviews, who rewrites the prompt, and what makes them act."""

    reviewer: str | None = None
    prompt_owner: str | None = Field(None, description="who rewrites the prompt or retrains")
    trigger: str | None = Field(None, description="what makes the prompt owner act")


class Brief(_Section):
    """A brief for one AI workflow; most fields are optional so a vague brief can be linted."""

    title: str | None = None
    objective: Objective = Field(default_factory=Objective)
    audience: Audience = Field(default_factory=Audience)
    inputs: list[Input] = Field(default_factory=list)
    output: OutputContract = Field(default_factory=OutputContract)
    constraints: Constraints = Field(default_factory=Constraints)
    acceptance: list[str] = Field(default_factory=list)
    budget: Budget = Field(default_factory=Budget)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    ownership: Ownership = Field(default_factory=Ownership)
    failure_handling: str | None = None

    _lists = field_validator("acceptance", mode="before")(_listify)

    @field_validator("objective", mode="before")
    @classmethod
    def _objective_as_text(cls, value: Any) -> Any:
        # the one-line brief everybody starts with: "objective: write great copy"
        return {"statement": value} if isinstance(value, str) else value

    @field_validator("inputs", mode="before")
    @classmethod
    def _inputs_none(cls, value: Any) -> Any:
        return [] if value is None else value

    @classmethod
    def from_dict(cls, data: Any, *, origin: str = "brief") -> Brief:
        """Build a brief from parsed YAML, with errors that name the field path."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise BriefError(
                f"{origin}: expected named sections like 'objective:' and 'audience:', found {type(data).__name__}.",
                "Start each section on its own line as 'name: value'.")
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise BriefError(_explain(err, origin), "Correct or remove the fields named above; the section names "
                                                    "are in the reference brief.") from None

    @classmethod
    def from_yaml(cls, text: str, *, origin: str = "brief") -> Brief:
        """Parse a brief from YAML text."""
        return cls.from_dict(_parse_yaml(text, origin), origin=origin)

    @classmethod
    def from_sections(cls, **sections: str) -> Brief:
        """Assemble a brief from one YAML text per section, e.g. objective='statement: ...'."""
        data: dict[str, Any] = {}
        for name, text in sections.items():
            data[name] = _parse_yaml(text, name) if isinstance(text, str) else text
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> Brief:
        """Read a brief from a YAML file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BriefError(f"{path}: no such file.", "Check the file name and folder.") from None
        return cls.from_yaml(text, origin=str(path))

    def to_yaml(self) -> str:
        """The brief as YAML, empty sections left out so it stays readable."""
        data = self.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=88)

    def to_messages(self, record: Any, examples: Any = None) -> list[dict[str, str]]:
        """Compile this brief and one data record (dict or pandas row) into chat messages."""
        return to_messages(self, record, examples)

    def system_prompt(self) -> str:
        """The system message this brief compiles to."""
        return system_prompt(self)

    def lint(self) -> LintReport:
        """Lint this brief and return the LintReport."""
        return lint(self)

    def save(self, path: str | Path) -> Path:
        """Write the brief as YAML and return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_yaml(), encoding="utf-8")
        return path


def _parse_yaml(text: str, origin: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        where = ""
        mark = getattr(err, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(err, "problem", None) or str(err)
        raise BriefError(f"{origin}: this is not valid YAML{where}: {problem}.", _yaml_fix(text, mark)) from None


# YAML gives these characters a meaning at the start of a value: a line that begins with one must be quoted.
_YAML_STARTS = {"%": "a directive", "@": "reserved", "`": "reserved", "-": "a list item", "*": "an alias",
                "&": "an anchor", "!": "a tag", "|": "a block of text", ">": "a folded block", "[": "a list",
                "{": "a mapping", "'": "a quoted text", '"': "a quoted text"}


def _yaml_fix(text: str, mark: Any) -> str:
    """How to fix a YAML error, in the words of the line that caused it (YAML often reports the next line)."""
    general = ("Write 'name: value' with a space after the colon, indent sub-items by two spaces, "
               "and put text containing ':' or '#' in quotes.")
    lines = text.splitlines()
    at = mark.line if mark is not None else 0
    for number in (at, at - 1):
        if not 0 <= number < len(lines):
            continue
        line = lines[number].strip()
        value = line.split(":", 1)[1].strip() if ":" in line and not line.startswith("-") else line
        first = value[:1]
        if first == "-":
            return (f"Line {number + 1} starts with '-', which YAML reads as an item of a list. If it is text, put "
                    "it in quotes; if it is a list, put it under a 'name:' line, indented by two spaces. " + general)
        if first in _YAML_STARTS and first not in ("'", '"', "[", "{"):
            return (f"Line {number + 1} starts its text with '{first}', which YAML reads as {_YAML_STARTS[first]}. "
                    f"Put the text in quotes, e.g. \"{value[:40]}\". " + general)
    return general


def _explain(err: ValidationError, origin: str) -> str:
    lines = [f"{origin}: {err.error_count()} problem(s) in the brief:"]
    for item in err.errors():
        path = ".".join(str(part) for part in item["loc"]) or "(top level)"
        kind = item["type"]
        if kind == "extra_forbidden":
            hint = "this field is not part of a brief; check the spelling or remove it"
        elif kind == "missing":
            hint = "this field is required here"
        else:
            hint = item["msg"]
        lines.append(f"  - {origin}.{path}: {hint}")
    return "\n".join(lines)
