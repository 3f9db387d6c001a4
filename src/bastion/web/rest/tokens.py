"""REST: /api/v1/tokens — create (secret shown once), list and revoke scoped API tokens. Admin only."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.control.tokens import ApiTokens
from bastion.core.errors import Forbidden
from bastion.core.grants import ApiToken
from bastion.pipeline.context import Principal
from bastion.web.mcp_endpoint import PRINCIPAL_SCOPE_KEY
from bastion.web.rest.common import read_json, require_object


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
    }


def _require_admin(request: Request) -> None:
    # The edge already keeps API tokens out of /api/v1/tokens; this holds even if that changes.
    principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if not isinstance(principal, Principal) or principal.kind != "admin":
        raise Forbidden("only the admin token can manage API tokens", missing="admin")


def token_routes(tokens: ApiTokens, max_body: int) -> list[Route]:
    async def create(request: Request) -> Response:
        _require_admin(request)
        token, secret = await tokens.create(require_object(await read_json(request, max_body)))
        # no-store: the one response that carries the secret must not linger in any cache.
        headers = {"Cache-Control": "no-store"}
        return JSONResponse({**token_json(token), "token": secret}, status_code=201, headers=headers)

    async def list_tokens(request: Request) -> Response:
        _require_admin(request)
        return JSONResponse({"items": [token_json(t) for t in await tokens.list()]})

    async def revoke(request: Request) -> Response:
        _require_admin(request)
        await tokens.revoke(request.path_params["id"])
        return Response(status_code=204)

    return [
        Route("/api/v1/tokens", list_tokens, methods=["GET"]),
        Route("/api/v1/tokens", create, methods=["POST"]),
        Route("/api/v1/tokens/{id}", revoke, methods=["DELETE"]),
    ]
