"""Token pages: create (servers, permissions, expiry, IP ranges), the secret shown once, list, revoke."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.web.admin.pages.forms import errors_for, lines
from bastion.web.admin.session import Viewer
from bastion.web.admin.ui import Ui, back

_FIELDS = ("name", "servers", "permissions", "expires_in", "ip_allow")
_EXPIRY = {"": None, "1h": 3600, "1d": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "90d": 90 * 86400}


def routes(ui: Ui) -> list[Route]:
    async def page(request: Request, viewer: Viewer, status: int = 200, **extra: Any) -> Response:
        tokens = (await ui.api(viewer, "GET", "/api/v1/tokens", request)).items()
        servers = (await ui.api(viewer, "GET", "/api/v1/servers", request)).items()
        return ui.render(request, viewer, "tokens.html", status, tokens=tokens, servers=servers, expiry=_EXPIRY, **extra)

    async def index(request: Request, viewer: Viewer) -> Response:
        return await page(request, viewer)

    async def create(request: Request, viewer: Viewer) -> Response:
        form = await request.form()
        servers = list(form.getlist("servers"))
        body: dict[str, Any] = {
            "name": str(form.get("name") or "").strip(),
            "servers": "*" if "*" in servers else servers,
            "permissions": list(form.getlist("permissions")) or ["mcp"],
            "ip_allow": lines(form.get("ip_allow")),
        }
        expiry = str(form.get("expires") or "")
        if expiry not in _EXPIRY:
            return await page(request, viewer, 400, errors={"expires_in": "choose an expiry from the list"}, form=form)
        if _EXPIRY[expiry] is not None:
            body["expires_in"] = _EXPIRY[expiry]
        reply = await ui.api(viewer, "POST", "/api/v1/tokens", request, body=body)
        if not reply.ok or not isinstance(reply.body, dict):
            return await page(request, viewer, reply.status, form=form, **errors_for(reply.detail, _FIELDS))
        # The one response that shows the secret: not a redirect, so it is never in a URL or history.
        return await page(request, viewer, created=reply.body)

    async def revoke(request: Request, viewer: Viewer) -> Response:
        token_id = request.path_params["id"]
        reply = await ui.api(viewer, "DELETE", f"/api/v1/tokens/{quote(token_id, safe='')}", request)
        return back("/admin/tokens", note="Revoked") if reply.ok else back("/admin/tokens", error=reply.detail)

    return [
        Route("/admin/tokens", ui.page(index), methods=["GET"]),
        Route("/admin/tokens", ui.page(create), methods=["POST"]),
        Route("/admin/tokens/{id}/revoke", ui.page(revoke), methods=["POST"]),
    ]
