"""Who is asking: the hub says, from the token or the hub's login cookie; never a name the request claims.

Every handler of the service is a ServiceHandler: before it runs, the hub (JupyterHub's service
auth, HubOAuth) identifies the person, and only people whose token carries access to this service
count. Whether a person is an instructor is asked of the hub too (membership of its `instructors` group).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx2
from jupyterhub.services.auth import HubOAuth, HubOAuthenticated
from tornado import web

from .settings import INSTRUCTORS_GROUP, SERVICE_NAME

SERVICE_SCOPE = f"access:services!service={SERVICE_NAME}"
GROUP_CACHE_S = 10.0


@dataclass
class Instructors:
    """The hub's instructors group, asked with the service's own token and kept for a few seconds."""

    hub_auth: HubOAuth
    _names: frozenset[str] = frozenset()
    _at: float = 0.0

    async def names(self) -> frozenset[str]:
        """Names in the hub's instructors group."""
        if time.monotonic() - self._at > GROUP_CACHE_S:
            url = f"{self.hub_auth.api_url}/groups/{INSTRUCTORS_GROUP}"
            async with httpx2.AsyncClient(timeout=10) as client:
                reply = await client.get(url, headers={"Authorization": f"token {self.hub_auth.api_token}"})
            self._names = frozenset(reply.json().get("users", [])) if reply.status_code == 200 else frozenset()
            self._at = time.monotonic()
        return self._names


class ServiceHandler(HubOAuthenticated, web.RequestHandler):
    """A handler whose current_user is the hub's user model (or None), with `instructor` decided by the hub."""

    def initialize(self, service: Any) -> None:
        self.service = service
        self.hub_auth = service.hub_auth

    async def prepare(self) -> None:
        """Identify the person through the hub before the handler runs."""
        model = await self.hub_auth.get_user(self, sync=False)
        if not model or model.get("kind", "user") != "user" or not self.hub_auth.check_scopes({SERVICE_SCOPE}, model):
            self.current_user = None
            self.instructor = False
            return
        self.current_user = model
        self.instructor = model["name"] in await self.service.instructors.names()

    @property
    def by_token(self) -> bool:
        """Identified by a valid hub token (not by a cookie, even with some Authorization header)."""
        return self.current_user is not None and getattr(self, "_token_authenticated", False)

    def get_current_user(self) -> Any:
        """Set in prepare(); tornado asks for it in @web.authenticated."""
        return getattr(self, "_current_user", None)
