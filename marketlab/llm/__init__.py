"""Model access for labs, graders and workflows: one path, the real openai SDK.

    from marketlab import llm
    client = llm.client()
    reply = client.chat.completions.create(model=llm.model_name(), messages=[...])
"""

from __future__ import annotations

import httpx2
import openai

from .config import Backend, resolve_backend
from .errors import LLMSetupError, ModelFileMissingError, PortTakenError, UsageError
from .ledger import RecordingTransport, event_hooks, usage_table
from .prices import estimate_cost

__all__ = ["client", "model_name", "backend", "usage_table", "estimate_cost", "LLMSetupError",
           "ModelFileMissingError", "PortTakenError", "UsageError", "Backend"]


def backend() -> Backend:
    """The backend the environment selects (MARKETLAB_BACKEND, else OPENAI_API_KEY, else local)."""
    return resolve_backend()


def model_name() -> str:
    """The model name to pass with every request on the active backend."""
    return resolve_backend().model


def client(*, timeout: float = 120.0, max_retries: int = 2) -> openai.OpenAI:
    """An openai.OpenAI wired to the active backend, recording every call in the usage ledger."""
    chosen = resolve_backend()
    hooks = event_hooks(chosen.name)
    if chosen.name != "scripted":
        from .refusals import install

        install()  # in a notebook: an allowance or rate-limit refusal is one plain line, not a traceback
    if chosen.name == "scripted":
        from .testing import ScriptedEndpoint

        return ScriptedEndpoint().client(max_retries=max_retries, timeout=timeout, event_hooks=hooks)
    transport: httpx2.BaseTransport = RecordingTransport(chosen.name)
    base_url: str | None
    api_key: str | None
    if chosen.name == "local":
        from .local import LocalTransport, ensure_server

        base_url, api_key = ensure_server(), "local-no-key-needed"
        transport = LocalTransport(transport)  # a dead server is named, with how it died
    else:
        base_url, api_key = chosen.base_url, chosen.api_key
    http_client = httpx2.Client(transport=transport, event_hooks=hooks, timeout=timeout, follow_redirects=True)
    return openai.OpenAI(api_key=api_key, base_url=base_url, http_client=http_client,
                         max_retries=max_retries, timeout=timeout)
