"""REST: /api/v1/tokens — create (secret shown once), list and revoke scoped API tokens.

The admin token and admin users manage every token; a signed-in user manages their own, which act
for them and never beyond their rights. API tokens never manage tokens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.control.tokens import ApiTokens
from bastion.core.errors import Forbidden
from bastion.core.grants import ApiToken
from bastion.core.identity import is_admin
from bastion.pipeline.context import Principal
from bastion.web.rest.access import principal_of
from bastion.web.rest.common import read_json, require_object
from bastion.web.rest.listing import paged


def token_json(token: ApiToken) -> dict[str, Any]:
    """A token as the API shows it: never its secret, never its hash."""
    return {
        "id": token.id,
        "name": token.name,
        "servers": token.servers if token.servers == "*" else list(token.servers),
        "permissions": list(token.permissions),
        "created_at": token.created_at.isoformat(),
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        "ip_allow": list(token.ip_allow),
        "revoked": token.revoked_at is not None,
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
        "last_used_ip": token.last_used_ip,
        "user": token.user,
    }


def _manager(request: Request) -> Principal:
    # The edge already keeps API tokens out of /api/v1/tokens; this holds even if that changes.
    principal = principal_of(request)
    if principal.kind not in ("admin", "user"):
        raise Forbidden("only the admin token or a signed-in user can manage API tokens", missing="admin")
    return principal


ServerAccess = Callable[[Principal, str], bool]


def token_routes(tokens: ApiTokens, max_body: int, may_use: ServerAccess = lambda _p, _s: True) -> list[Route]:
    async def create(request: Request) -> Response:
        principal = _manager(request)
        body = require_object(await read_json(request, max_body))
        token, secret = await tokens.create(
            body, user=principal.user, viewer=principal.role == "viewer", may_use=lambda s: may_use(principal, s)
        )
        # no-store: the one response that carries the secret must not linger in any cache.
        headers = {"Cache-Control": "no-store"}
        return JSONResponse({**token_json(token), "token": secret}, status_code=201, headers=headers)

    async def list_tokens(request: Request) -> Response:
        principal = _manager(request)
        found = await tokens.list(user=principal.user, every=is_admin(principal))
        return JSONResponse(paged(request, [token_json(t) for t in found]))

    async def revoke(request: Request) -> Response:
        principal = _manager(request)
        await tokens.revoke(request.path_params["id"], user=principal.user, every=is_admin(principal))
        return Response(status_code=204)

    return [
        Route("/api/v1/tokens", list_tokens, methods=["GET"]),
        Route("/api/v1/tokens", create, methods=["POST"]),
        Route("/api/v1/tokens/{id}", revoke, methods=["DELETE"]),
    ]
