"""On the hub: the figures only the hub's service holds, for the cohort report (practice attempts, gateway usage).

The instructor's server has the hub's address and its own hub token; the service answers only
instructors. Off the hub there is nothing to read and the report leaves these sections out.
"""

from __future__ import annotations

from pydantic import BaseModel, ValidationError


class ExerciseAttempts(BaseModel):
    """How often one check was run on the hub, and by how many learners."""

    lab: str
    exercise: str
    attempts: int
    failed: int
    tried: int
    passed: int


class GatewayUsage(BaseModel):
    """One learner's model use as the hub's gateway counted it (not as the learner reported it)."""

    learner: str
    calls: int
    answered: int
    prompt_tokens: int
    completion_tokens: int
    over_budget: int
    rate_limited: int


class HubFigures(BaseModel):
    """What the hub's service reports for the cohort; `problem` says why it could not be read."""

    exercises: list[ExerciseAttempts] = []
    usage: list[GatewayUsage] = []
    problem: str = ""


def fetch_hub_figures(timeout: float = 20) -> HubFigures | None:
    """The hub's figures when this runs in an instructor's server on the hub; None anywhere else."""
    from ..llm.config import resolve_backend
    from ..llm.errors import LLMSetupError

    try:
        backend = resolve_backend()  # on the hub: the gateway's URL and this server's own hub token
    except LLMSetupError:
        return None
    if backend.name != "hub":
        return None
    import httpx2

    url = str(backend.base_url).rstrip("/").removesuffix("/v1") + "/report.json"
    try:
        reply = httpx2.get(url, headers={"Authorization": f"token {backend.api_key}"}, timeout=timeout)
        if reply.status_code != 200:
            return HubFigures(problem=f"the hub's service answered {reply.status_code} (instructors only)")
        return HubFigures.model_validate(reply.json())
    except (httpx2.HTTPError, ValueError, ValidationError) as exc:
        return HubFigures(problem=f"the hub's service could not be read ({type(exc).__name__})")
