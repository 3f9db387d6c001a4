"""REST: /api/v1/vault — key rotation (admin only). Secrets themselves are never served."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.control.gateway import Gateway
from bastion.core.errors import Forbidden
from bastion.pipeline.context import Principal
from bastion.web.mcp_endpoint import PRINCIPAL_SCOPE_KEY


def _require_admin(request: Request) -> None:
    # The edge already keeps API tokens to GETs of the catalog; this holds even if that changes.
    principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if not isinstance(principal, Principal) or principal.kind != "admin":
        raise Forbidden("only the admin can rotate the vault key", missing="admin")


def vault_routes(gateway: Gateway) -> list[Route]:
    async def rotate(request: Request) -> Response:
        """Re-wrap every stored secret's data key under the current key (BASTION_VAULT_KEY)."""
        _require_admin(request)
        report = await gateway.rotate_vault()
        return JSONResponse(
            {
                "key_id": report.key_id,
                "rewrapped": report.rewrapped,
                "already_current": report.already_current,
                "failed": list(report.failed),
            }
        )

    return [Route("/api/v1/vault/rotate", rotate, methods=["POST"])]
