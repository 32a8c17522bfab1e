"""The hub's settings: one typed record, written to hub.json by `marketlab hub start` and read by every part."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import MarketlabError

DEFAULT_ROOT = Path("/srv/marketlab-hub")
SETTINGS_FILE = "hub.json"
SERVICE_NAME = "marketlab"
INSTRUCTORS_GROUP = "instructors"
# System groups of the hub's accounts: a system account outside them is never used for a server.
LEARNER_SYSTEM_GROUP = "marketlab-learners"
INSTRUCTOR_SYSTEM_GROUP = "marketlab-instructors"
GATEWAY_ACCOUNT = "marketlab-gw"
# Hub names that may become system accounts: lower-case letters, digits and '-', starting with a letter.
USERNAME_PATTERN = r"^[a-z][a-z0-9-]{1,30}\Z"  # \Z, not $: JupyterHub's re.match lets $ pass a trailing newline
COURSE_ID = "marketlab"


class HubError(MarketlabError, RuntimeError):
    """The hub cannot start or serve as configured."""


class Upstream(BaseModel):
    """Where the gateway sends model requests: the built-in model (url None) or a compatible endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str | None = None
    model: str | None = None   # the upstream model learners get when they ask for the built-in one


class Allowance(BaseModel):
    """What one learner may spend through the gateway."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    daily_tokens: int = Field(200_000, gt=0)
    requests_per_minute: int = Field(30, gt=0)
    in_flight: int = Field(2, gt=0)          # requests of one learner the gateway forwards at once
    max_completion_tokens: int = Field(1024, gt=0)


class HubSettings(BaseModel):
    """Everything the hub, its spawner and its service need to know (never a secret)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    root: Path = DEFAULT_ROOT
    ip: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    hub_port: int = Field(8081, ge=1, le=65535)
    service_port: int = Field(8090, ge=1, le=65535)
    model_port: int = Field(8432, ge=1024, le=65535)
    proxy_api_port: int = Field(8001, ge=1, le=65535)
    instructors: tuple[str, ...] = ()
    upstream: Upstream = Upstream()
    allowance: Allowance = Allowance()
    # Each learner's server runs in a bubblewrap view of the machine (their home, the exchange, the venv).
    sandbox_learners: bool = True

    @field_validator("instructors")
    @classmethod
    def _names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            try:
                check_username(name)
            except HubError as exc:
                raise ValueError(exc.message()) from None
        return names

    # -- the folders ---------------------------------------------------------------------------
    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def student(self) -> Path:
        return self.root / "student"

    @property
    def learner_config(self) -> Path:
        return self.root / "config" / "learner"

    @property
    def instructor_config(self) -> Path:
        return self.root / "config" / "instructor"

    @property
    def exchange(self) -> Path:
        return self.root / "exchange"

    @property
    def course(self) -> Path:
        return self.root / "course"

    @property
    def gateway(self) -> Path:
        return self.root / "gateway"

    @property
    def homes(self) -> Path:
        return self.root / "homes"

    @property
    def public_url(self) -> str:
        """The hub's address on this machine (where it listens; loopback when on every interface)."""
        host = "127.0.0.1" if self.ip in ("", "0.0.0.0", "::") else self.ip
        return f"http://{host}:{self.port}"

    @property
    def service_url(self) -> str:
        """Where learners' servers reach the service: through the proxy, as every hub service."""
        return f"{self.public_url}/services/{SERVICE_NAME}"

    def save(self) -> Path:
        """Write hub.json (readable by all: it holds no secret)."""
        path = self.root / SETTINGS_FILE
        path.write_text(self.model_dump_json(indent=2) + "\n")
        path.chmod(0o644)
        return path


def served_model(settings: HubSettings) -> str:
    """The model name learners ask for on this hub (what marketlab.llm.model_name() gives there)."""
    from ..llm.config import LOCAL_MODEL

    return settings.upstream.model or LOCAL_MODEL


def check_username(name: str) -> str:
    """The name, or HubError when it cannot be a hub account (and so a system account)."""
    if not isinstance(name, str) or not re.fullmatch(USERNAME_PATTERN, name):
        raise HubError(f"{name!r} cannot be a hub user name.",
                       "Use 2 to 31 lower-case letters, digits or '-', starting with a letter (e.g. ana-lopez).")
    return name


def load(root: Path | str | None = None) -> HubSettings:
    """The settings saved in `root`/hub.json, with a clear message when they are missing or broken."""
    folder = Path(root or DEFAULT_ROOT)
    path = folder / SETTINGS_FILE
    try:
        return HubSettings.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        raise HubError(f"{path} does not exist: this folder has no hub.",
                       "Start the hub once with `marketlab hub start` (or `make hub`).") from None
    except (json.JSONDecodeError, ValidationError) as exc:
        raise HubError(f"{path} is not valid hub settings ({str(exc).splitlines()[0]}).",
                       "Start the hub again with `marketlab hub start`, which rewrites it.") from None
