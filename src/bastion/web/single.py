"""The ASGI edge of `bastion wrap`: one virtual server at `/mcp`, optional bearer token.

The same checks as the gateway's edge (Origin, then the token), with a single route.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import Receive, Scope, Send

from bastion.core.errors import MisdirectedRequest, NotFound
from bastion.web.asgi import Authenticator, admitted, without_padding
from bastion.web.errors import problem_from
from bastion.web.headers import BASE_HEADERS, with_headers
from bastion.web.hosts import ANY_HOST, host_allowed
from bastion.web.mcp_endpoint import McpFront

MCP_PATH = "/mcp"


class SingleServerApp:
    """Serves the virtual server `server` of `front` at `/mcp`; with an authenticator that has no
    verifier, anyone may call."""

    def __init__(
        self, front: McpFront, server: str, authenticator: Authenticator, allowed_origins: Sequence[str] = ()
    ) -> None:
        self.front = front
        self.server = server
        self.authenticator = authenticator
        self.allowed_origins = tuple(allowed_origins)
        self.hosts: frozenset[str] = frozenset({ANY_HOST})
        """Host names served (web/hosts.py); set by `bastion wrap` for a loopback bind."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        send = with_headers(send, BASE_HEADERS)
        host = next((v for k, v in scope["headers"] if k == b"host"), None)
        if not host_allowed(host, self.hosts):
            await problem_from(MisdirectedRequest("this server does not serve that host name"))(scope, receive, send)
            return
        if not await admitted(scope, receive, send, self.authenticator, self.allowed_origins):
            return
        path: str = scope["path"]
        if path.rstrip("/") != MCP_PATH:
            await problem_from(NotFound(f"no such endpoint: {scope['method']} {path}; MCP is at {MCP_PATH}"))(
                scope, receive, send
            )
            return
        scope["headers"] = without_padding(scope["headers"])
        await self.front.handle_streamable(self.server, scope, receive, send)
