"""An optional key for the built-in server: with MARKETLAB_SERVER_KEY set, /v1 answers only requests carrying it.

The hub's gateway starts the built-in model with a key of its own, because learners share the
machine's loopback network: without the key, a learner could call the model directly and skip
their allowance. On a laptop no key is set and nothing changes.
"""

from __future__ import annotations

import hmac
from typing import Any

from starlette.responses import JSONResponse

from .protocol import OpenAIError

KEY_VARIABLE = "MARKETLAB_SERVER_KEY"


class RequireKey:
    """ASGI middleware: a 401 in OpenAI's shape for any /v1 request without `Authorization: Bearer <key>`."""

    def __init__(self, app: Any, key: str) -> None:
        self.app = app
        self.expected = f"Bearer {key}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1"):
            presented = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(presented, self.expected):
                refusal = OpenAIError(401, "This model server answers only the hub's gateway. Use "
                                           "marketlab.llm.client(), which goes through the gateway.",
                                      code="invalid_api_key")
                await JSONResponse(refusal.body(), status_code=401)(scope, receive, send)
                return
        await self.app(scope, receive, send)
