"""How a run behaves, in small typed groups (in the style of httpx's Timeout and Limits).

    RunSettings(max_tokens=300, limits=Limits(workers=4, rpm=60), budget=Budget(tokens=50_000))

Each group is one frozen pydantic model: it is the only place its fields and defaults are
written, it is validated once when built, and a bad value raises a WorkflowSettingsError that
says which setting is wrong and what to write instead. The short keywords learners use
(``workers=4``, ``token_budget=50_000``) are mapped onto these fields by ``RunSettings.build``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import WorkflowSettingsError


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise _settings_error(type(self).__name__, err) from None

    def source(self) -> str:
        """Python that rebuilds this value, naming only what differs from the defaults."""
        parts = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value == type(self).model_fields[name].get_default(call_default_factory=True):
                continue
            parts.append(f"{name}={value.source() if isinstance(value, _Group) else repr(value)}")
        return f"{type(self).__name__}({', '.join(parts)})"


class Limits(_Group):
    """How many rows are sent at once, and an optional cap on requests per minute."""

    workers: int = Field(4, ge=1, le=64, description="rows sent at the same time")
    rpm: float | None = Field(None, gt=0, description="at most this many requests per minute (None: no cap)")


class Budget(_Group):
    """The most a run may spend, in tokens and/or estimated dollars (None: no limit)."""

    tokens: int | None = Field(None, ge=0, description="prompt plus completion tokens")
    cost_usd: float | None = Field(None, ge=0, description="estimated dollars")
    prices: tuple[float, float] | None = Field(
        None, description="(input, output) dollars per million tokens, for a model marketlab has no price for")

    @property
    def limited(self) -> bool:
        """True when any limit is set."""
        return self.tokens is not None or self.cost_usd is not None


class Retries(_Group):
    """Retry a failed request up to max_attempts in all, waiting base_delay * 2**n (capped), or retry-after."""

    max_attempts: int = Field(4, ge=1, le=20)
    base_delay: float = Field(1.0, ge=0)
    max_delay: float = Field(10.0, ge=0)
    # A 429 asking for a longer wait fails the row instead of stalling the notebook.
    max_retry_after: float = Field(60.0, ge=0)
    jitter: float = Field(0.2, ge=0, le=1)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if retry_after is not None:
            return retry_after * (1 + random.uniform(0, self.jitter / 4))  # never shorter than asked
        wait = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return wait * (1 + random.uniform(0, self.jitter))


RetryPolicy = Retries  # the earlier name, kept so existing code and saved workflows still work


class Timeouts(_Group):
    """How long one request may take: to connect, and to get the whole reply (seconds)."""

    connect: float = Field(5.0, gt=0)
    # Long enough for the built-in model's reply on a slow laptop, short enough that a stalled
    # request costs a notebook cell seconds, not minutes.
    read: float = Field(20.0, gt=0)


class Storage(_Group):
    """The response cache and the checkpoint: True (default place), False (off) or a path."""

    cache: bool | str = True
    checkpoint: bool | str = True
    retry_failed: bool = Field(True, description="on a rerun, send again the rows whose saved or cached reply "
                                                 "broke a rule or could not be read (False keeps them as they were)")
    cache_size_mb: int = Field(512, ge=1, description="the cache drops its oldest replies beyond this size")


class RunSettings(_Group):
    """Everything that decides how run_batch behaves, apart from the table, the builder and the schema."""

    max_tokens: int = Field(400, ge=1, description="the longest reply, in tokens")
    temperature: float = Field(0.0, ge=0, le=2)
    seed: int | None = None
    repair: bool = Field(True, description="send one repair request when a reply is not usable")
    describe_schema: bool = Field(True, description="add a line per schema field to the system message")
    include: tuple[str, ...] = Field((), description="input columns copied into the results (e.g. 'sku')")
    required_columns: tuple[str, ...] = ()
    progress: bool = True
    show_summary: bool = True
    limits: Limits = Limits()
    budget: Budget = Budget()
    retries: Retries = Retries()
    timeouts: Timeouts = Timeouts()
    storage: Storage = Storage()

    @classmethod
    def build(cls, settings: RunSettings | None = None, **options: Any) -> RunSettings:
        """`settings` (or the defaults) with keyword options applied; see KEYWORDS for the short names."""
        base = settings if settings is not None else cls()
        if not isinstance(base, RunSettings):
            raise WorkflowSettingsError(f"settings is a {type(base).__name__}, not RunSettings(...).",
                                        "Pass settings=RunSettings(...), or give the options as keywords.")
        if not options:
            return base
        data = base.model_dump()
        for name, value in options.items():
            path = KEYWORDS.get(name)
            if path is None:
                raise WorkflowSettingsError(f"'{name}' is not a setting of run_batch.",
                                            f"Use one of: {', '.join(sorted(KEYWORDS))}.")
            if isinstance(value, Path):
                value = str(value)
            if isinstance(value, _Group):
                value = value.model_dump()
            if len(path) == 1:
                data[path[0]] = value
            else:
                data[path[0]] = {**data[path[0]], path[1]: value}
        return cls(**data)


def _keywords() -> dict[str, tuple[str, ...]]:
    """Every keyword run_batch accepts, derived from the fields above, plus the earlier short names."""
    out: dict[str, tuple[str, ...]] = {}
    for name, info in RunSettings.model_fields.items():
        out[name] = (name,)
        group = info.annotation
        if isinstance(group, type) and issubclass(group, _Group):
            for inner in group.model_fields:
                out.setdefault(inner, (name, inner))
    out.update({"token_budget": ("budget", "tokens"), "cost_budget_usd": ("budget", "cost_usd"),
                "retry": ("retries",), "request_timeout": ("timeouts", "read")})
    return out


def _settings_error(group: str, err: ValidationError) -> WorkflowSettingsError:
    item = err.errors(include_url=False)[0]
    where = ".".join(str(p) for p in item.get("loc", ())) or "value"
    ctx = item.get("ctx") or {}
    code = item.get("type", "")
    value = item.get("input")
    limits = {"greater_than_equal": "at least {}", "greater_than": "more than {}", "less_than_equal": "at most {}",
              "less_than": "less than {}"}
    if code == "extra_forbidden":
        known = ", ".join(_GROUPS[group].model_fields) if group in _GROUPS else ""
        return WorkflowSettingsError(f"{group} has no setting '{where}'.", f"Use one of: {known}.")
    if code in limits:
        wanted = limits[code].format(next(iter(ctx.values()), "?"))
        return WorkflowSettingsError(f"{group}: {where} is {value!r}.", f"Use a number {wanted}.")
    return WorkflowSettingsError(f"{group}: {where} is {value!r}: {item.get('msg', 'not valid')}.",
                                 f"Give {where} a value of the right kind (see help({group})).")


_GROUPS: dict[str, type[_Group]] = {g.__name__: g for g in (Limits, Budget, Retries, Timeouts, Storage, RunSettings)}
KEYWORDS: dict[str, tuple[str, ...]] = _keywords()

__all__ = ["Budget", "KEYWORDS", "Limits", "Retries", "RetryPolicy", "RunSettings", "Storage", "Timeouts"]
