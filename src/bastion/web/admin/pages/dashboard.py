"""The dashboard: upstream health at a glance, catalog and server counts, what needs attention."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.web.admin.pages.insight import usage_summary
from bastion.web.admin.session import Viewer
from bastion.web.admin.ui import Ui


def routes(ui: Ui) -> list[Route]:
    async def dashboard(request: Request, viewer: Viewer) -> Response:
        upstreams = (await ui.api(viewer, "GET", "/api/v1/upstreams", request)).items()
        servers = (await ui.api(viewer, "GET", "/api/v1/servers", request)).items()
        counts = {}
        for kind in ("tools", "prompts", "resources"):
            reply = await ui.api(viewer, "GET", f"/api/v1/{kind}", request, params={"limit": "1"})
            counts[kind] = reply.body.get("total", 0) if reply.ok and isinstance(reply.body, dict) else 0
        disabled = (await ui.api(viewer, "GET", "/api/v1/tools", request, params={"limit": "1", "enabled": "false"}))
        health = {"healthy": 0, "unhealthy": 0, "other": 0}
        for upstream in upstreams:
            status = upstream.get("status")
            health[status if status in ("healthy", "unhealthy") else "other"] += 1
        failing = [u for u in upstreams if u.get("status") == "unhealthy"]
        waiting = await ui.api(viewer, "GET", "/api/v1/approvals", request, params={"limit": "1"})  # the count only
        approvals = int(waiting.body.get("total") or 0) if waiting.ok and isinstance(waiting.body, dict) else 0
        usage, unused = None, 0
        if viewer.is_admin:
            hour, day = await usage_summary(ui, viewer, request, "hour"), await usage_summary(ui, viewer, request, "day")
            usage = {"hour": hour, "day": day} if hour is not None and day is not None else None
            unused = len((await ui.api(viewer, "GET", "/api/v1/usage/unused", request, params={"days": "30"})).items())
        return ui.render(
            request,
            viewer,
            "dashboard.html",
            upstreams=upstreams,
            servers=servers,
            counts=counts,
            health=health,
            failing=failing,
            approvals=approvals,
            usage=usage,
            unused=unused,
            disabled_tools=disabled.body.get("total", 0) if disabled.ok and isinstance(disabled.body, dict) else 0,
        )

    return [Route("/admin", ui.page(dashboard), methods=["GET"]), Route("/admin/", ui.page(dashboard), methods=["GET"])]
