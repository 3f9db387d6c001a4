"""The ASGI edge of `bastion wrap`: one virtual server at `/mcp`, optional bearer token.

The same checks as the gateway's edge (Origin, then the token), with a single route.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from bastion.auth.tokens import AdminTokenVerifier
from bastion.core.errors import Forbidden, NotFound, Unauthenticated
from bastion.web.asgi import admit, without_padding
from bastion.web.errors import problem_from
from bastion.web.mcp_endpoint import PRINCIPAL_SCOPE_KEY, McpFront

MCP_PATH = "/mcp"


class SingleServerApp:
    """Serves the virtual server `server` of `front` at `/mcp`; without a verifier, anyone may call."""

    def __init__(
        self, front: McpFront, server: str, verifier: AdminTokenVerifier | None, allowed_origins: Sequence[str] = ()
    ) -> None:
        self.front = front
        self.server = server
        self.verifier = verifier
        self.allowed_origins = tuple(allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path == "/healthz":
            await Response(json.dumps({"status": "ok"}), media_type="application/json")(scope, receive, send)
            return
        try:
            scope[PRINCIPAL_SCOPE_KEY] = admit(scope, self.verifier, self.allowed_origins)
        except (Unauthenticated, Forbidden) as exc:
            await problem_from(exc)(scope, receive, send)
            return
        if path.rstrip("/") != MCP_PATH:
            await problem_from(NotFound(f"no such endpoint: {scope['method']} {path}; MCP is at {MCP_PATH}"))(
                scope, receive, send
            )
            return
        scope["headers"] = without_padding(scope["headers"])
        await self.front.handle_streamable(self.server, scope, receive, send)
