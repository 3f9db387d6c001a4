"""Usage and audit pages (admins): calls over time, per-tool figures, unused tools; the audit log
with filters and the verification of its chains."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.web.admin.chart import bars
from bastion.web.admin.session import Viewer
from bastion.web.admin.ui import Ui

PERIODS = {"hour": (timedelta(hours=1), "minute"), "day": (timedelta(days=1), "hour"), "week": (timedelta(days=7), "day")}
_AUDIT_FILTERS = ("action", "actor", "target", "outcome", "server", "since")


def since(period: str) -> str:
    return (datetime.now(UTC) - PERIODS[period][0]).isoformat()


async def usage_summary(ui: Ui, viewer: Viewer, request: Request, period: str, **filters: str) -> dict[str, Any] | None:
    """Calls over time and per item for `period`, or None when the caller may not read usage."""
    start, step = since(period), PERIODS[period][1]
    over_time = await ui.api(viewer, "GET", "/api/v1/usage", request, params={"since": start, "group_by": step, **filters})
    if not over_time.ok:
        return None
    per_item = await ui.api(viewer, "GET", "/api/v1/usage", request, params={"since": start, "group_by": "item", **filters})
    items = per_item.items()
    for item in items:
        item["error_rate"] = round(100 * int(item.get("errors") or 0) / max(1, int(item.get("calls") or 0)), 1)
    return {
        "chart": bars(over_time.items()),
        "items": items,
        "slowest": sorted(items, key=lambda i: -(i.get("p95_ms") or 0))[:5],
        "failing": [i for i in sorted(items, key=lambda i: -i["error_rate"]) if i.get("errors")][:5],
    }


def routes(ui: Ui) -> list[Route]:
    async def usage(request: Request, viewer: Viewer) -> Response:
        period = request.query_params.get("period", "day")
        period = period if period in PERIODS else "day"
        summary = await usage_summary(ui, viewer, request, period)
        if summary is None:
            return ui.render(request, viewer, "error.html", 403, message="Usage figures are for admins.")
        unused = await ui.api(viewer, "GET", "/api/v1/usage/unused", request, params={"days": "30"})
        return ui.render(request, viewer, "usage.html", period=period, periods=PERIODS, unused=unused.items(), **summary)

    async def audit(request: Request, viewer: Viewer, verdict: dict[str, Any] | None = None) -> Response:
        q = request.query_params
        filters = {k: q.get(k, "") for k in _AUDIT_FILTERS}
        params = {k: v for k, v in filters.items() if v} | {"limit": "50"}
        if q.get("cursor"):
            params["cursor"] = q["cursor"]
        reply = await ui.api(viewer, "GET", "/api/v1/audit", request, params=params)
        if not reply.ok:
            return ui.render(request, viewer, "error.html", reply.status, message=reply.detail)
        return ui.render(request, viewer, "audit.html", records=reply.items(), filters=filters,
                         next_cursor=(reply.body or {}).get("next_cursor"), verdict=verdict)

    async def verify(request: Request, viewer: Viewer) -> Response:
        reply = await ui.api(viewer, "POST", "/api/v1/audit/verify", request)
        verdict = reply.body if reply.ok and isinstance(reply.body, dict) else {"ok": False, "error": reply.detail}
        return await audit(request, viewer, verdict)

    return [
        Route("/admin/usage", ui.page(usage), methods=["GET"]),
        Route("/admin/audit", ui.page(audit), methods=["GET"]),
        Route("/admin/audit", ui.page(verify), methods=["POST"]),
    ]
