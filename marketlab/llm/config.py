"""Where marketlab keeps its per-user files, and which backend is active."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import LLMSetupError

LOCAL_MODEL = "smollm2-135m-instruct"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
DEFAULT_PORT = 8431
BACKENDS = ("local", "openai", "compatible", "scripted", "hub")
HUB_TOKEN_VARIABLE = "JUPYTERHUB_API_TOKEN"


def home() -> Path:
    """Per-user folder for the server state, ledger and cache (MARKETLAB_HOME or ~/.marketlab)."""
    path = Path(os.environ.get("MARKETLAB_HOME") or Path.home() / ".marketlab")
    path.mkdir(parents=True, exist_ok=True)
    return path


def ledger_path() -> Path:
    """SQLite file of the usage ledger."""
    return home() / "usage.sqlite"


def server_state_path() -> Path:
    """JSON file through which every kernel finds the running local server."""
    return home() / "server.json"


def server_port() -> int:
    """Port of the local server: MARKETLAB_PORT or the default."""
    raw = os.environ.get("MARKETLAB_PORT", "")
    if not raw:
        return DEFAULT_PORT
    try:
        port = int(raw)
    except ValueError:
        raise LLMSetupError(
            f"MARKETLAB_PORT is {raw!r}, which is not a port number.",
            "Set MARKETLAB_PORT to a whole number between 1024 and 65535, or unset it.",
        ) from None
    if not 1024 <= port <= 65535:
        raise LLMSetupError(
            f"MARKETLAB_PORT is {port}, outside 1024-65535.",
            "Choose a port between 1024 and 65535, or unset MARKETLAB_PORT.",
        )
    return port


@dataclass(frozen=True)
class Backend:
    """The resolved backend: how to reach it and which model to ask for."""

    name: str
    base_url: str | None
    api_key: str | None
    model: str

    def describe(self) -> str:
        """One line for people, never showing the key."""
        if self.name == "local":
            return f"local backend: the built-in model {self.model}, running on this machine"
        if self.name == "hub":
            return f"hub backend: model {self.model} through the hub's model gateway at {self.base_url}"
        where = self.base_url or "https://api.openai.com/v1"
        return f"{self.name} backend, model {self.model}, at {where}"


def resolve_backend() -> Backend:
    """Pick the backend from the environment: MARKETLAB_BACKEND, else OPENAI_API_KEY, else local."""
    chosen = os.environ.get("MARKETLAB_BACKEND", "").strip().lower()
    key = os.environ.get("OPENAI_API_KEY") or None
    base_url = os.environ.get("OPENAI_BASE_URL") or None
    if chosen and chosen not in BACKENDS:
        raise LLMSetupError(
            f"MARKETLAB_BACKEND is {chosen!r}; it must be one of {', '.join(BACKENDS)}.",
            "Set MARKETLAB_BACKEND=local to use the built-in model, or unset it.",
        )
    if not chosen:
        chosen = ("compatible" if base_url else "openai") if key else "local"
    model_override = os.environ.get("MARKETLAB_MODEL") or None
    if chosen == "local":
        return Backend("local", None, None, LOCAL_MODEL)
    if chosen == "hub":
        return _hub_backend(base_url, model_override)
    if chosen == "scripted":
        return Backend("scripted", "http://scripted.invalid/v1", "scripted", model_override or "scripted")
    if chosen == "openai":
        if not key:
            raise LLMSetupError(
                "MARKETLAB_BACKEND is 'openai' but OPENAI_API_KEY is not set.",
                "Set OPENAI_API_KEY to your company's key, or use MARKETLAB_BACKEND=local.",
            )
        return Backend("openai", base_url, key, model_override or DEFAULT_OPENAI_MODEL)
    # compatible: Ollama, vLLM, Azure, a course gateway; many accept any key.
    if not base_url:
        raise LLMSetupError(
            "MARKETLAB_BACKEND is 'compatible' but OPENAI_BASE_URL is not set.",
            "Set OPENAI_BASE_URL to the endpoint, e.g. http://localhost:11434/v1 for Ollama.",
        )
    return Backend("compatible", base_url, key or "not-needed", model_override or DEFAULT_OPENAI_MODEL)


def _hub_backend(base_url: str | None, model: str | None) -> Backend:
    """On the hub: the gateway the spawner named, with this server's own hub token as the key."""
    token = os.environ.get(HUB_TOKEN_VARIABLE) or None
    if not base_url or not token:
        raise LLMSetupError(
            "MARKETLAB_BACKEND is 'hub' but this Jupyter server was not started by the hub "
            f"({'OPENAI_BASE_URL' if not base_url else HUB_TOKEN_VARIABLE} is not set).",
            "On the hub, restart your server (File > Hub Control Panel > Stop, then Start); elsewhere unset "
            "MARKETLAB_BACKEND to use the built-in model.",
        )
    return Backend("hub", base_url, token, model or LOCAL_MODEL)
