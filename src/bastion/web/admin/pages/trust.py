"""Pages that keep the catalog trustworthy: approvals of changed definitions (side-by-side diff),
duplicate tools, and the MCP Registry browser with install."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.web.admin.pages.forms import errors_for
from bastion.web.admin.session import Viewer
from bastion.web.admin.sidebyside import side_by_side
from bastion.web.admin.ui import Ui, back, page_count, page_of

APPROVALS_PAGE = 20
"""Pending changes one page shows (an upstream may change thousands of definitions at once)."""


def routes(ui: Ui) -> list[Route]:
    async def approvals(request: Request, viewer: Viewer) -> Response:
        page, window = page_of(request, APPROVALS_PAGE)
        reply = await ui.api(viewer, "GET", "/api/v1/approvals", request, params=window)
        if not reply.ok:
            return ui.render(request, viewer, "error.html", reply.status, message=reply.detail)
        # An upstream sizes these definitions: diffed off the event loop, so a long one stalls only this page.
        waiting = await anyio.to_thread.run_sync(
            lambda: [{**a, "rows": side_by_side(a.get("old"), a.get("new"))} for a in reply.items()]
        )
        body = reply.body if isinstance(reply.body, dict) else {}
        total = int(body.get("total") or 0)
        return ui.render(request, viewer, "approvals.html", approvals=waiting, total=total, page=page,
                         pages=page_count(total, APPROVALS_PAGE),
                         quarantined=body.get("quarantined", 0), flagged=body.get("flagged", 0))

    async def decide(request: Request, viewer: Viewer) -> Response:
        approval = quote(request.path_params["id"], safe="")
        verdict = "approve" if (await request.form()).get("decision") == "approve" else "reject"
        reply = await ui.api(viewer, "POST", f"/api/v1/approvals/{approval}/{verdict}", request)
        done = "Approved" if verdict == "approve" else "Rejected"
        return back("/admin/approvals", note=done) if reply.ok else back("/admin/approvals", error=reply.detail)

    async def duplicates(request: Request, viewer: Viewer) -> Response:
        upstream = request.query_params.get("upstream", "")
        reply = await ui.api(viewer, "GET", "/api/v1/catalog/duplicates", request, params={"upstream": upstream} if upstream else None)
        groups = reply.body.get("groups", []) if reply.ok and isinstance(reply.body, dict) else []
        return ui.render(request, viewer, "duplicates.html", groups=groups, upstream=upstream,
                         error=None if reply.ok else reply.detail)

    async def registry(request: Request, viewer: Viewer) -> Response:
        q = request.query_params.get("q", "")
        sources = (await ui.api(viewer, "GET", "/api/v1/registries", request)).items()
        found = await ui.api(viewer, "GET", "/api/v1/registries/search", request, params={"q": q, "limit": "100"})
        return ui.render(request, viewer, "registry.html", sources=sources, entries=found.items(), q=q,
                         error=None if found.ok else found.detail)

    async def add_source(request: Request, viewer: Viewer) -> Response:
        form = await request.form()
        body = {"name": str(form.get("name") or "").strip(), "url": str(form.get("url") or "").strip() or None}
        reply = await ui.api(viewer, "POST", "/api/v1/registries", request, body=body)
        return back("/admin/registry", note=f"Added {body['name']}") if reply.ok else back("/admin/registry", error=reply.detail)

    async def entry(request: Request, viewer: Viewer, status: int = 200, **extra: Any) -> Response:
        source = request.path_params["source"]
        params = {"server": request.query_params.get("server", "")}
        reply = await ui.api(viewer, "GET", f"/api/v1/registries/{quote(source, safe='')}/entry", request, params=params)
        if not reply.ok or not isinstance(reply.body, dict):
            return ui.render(request, viewer, "error.html", reply.status, message=reply.detail)
        return ui.render(request, viewer, "registry_entry.html", status, source=source, entry=reply.body, **extra)

    async def install(request: Request, viewer: Viewer) -> Response:
        source = request.path_params["source"]
        form = await request.form()
        values = {k[4:]: str(v) for k, v in form.items() if k.startswith("req:") and str(v)}
        body: dict[str, Any] = {"server": request.query_params.get("server", ""), "values": values}
        for key in ("name", "prefer", "team", "visibility"):
            if form.get(key):
                body[key] = str(form.get(key))
        reply = await ui.api(viewer, "POST", f"/api/v1/registries/{quote(source, safe='')}/install", request, body=body)
        if not reply.ok or not isinstance(reply.body, dict):
            return await entry(request, viewer, reply.status, **errors_for(reply.detail, ("name", "team", "visibility")))
        name = str(reply.body.get("name"))
        return back(f"/admin/upstreams/{quote(name, safe='')}", note=f"Installed as {name}")

    return [
        Route("/admin/approvals", ui.page(approvals), methods=["GET"]),
        Route("/admin/approvals/{id}", ui.page(decide), methods=["POST"]),
        Route("/admin/duplicates", ui.page(duplicates), methods=["GET"]),
        Route("/admin/registry", ui.page(registry), methods=["GET"]),
        Route("/admin/registry", ui.page(add_source), methods=["POST"]),
        Route("/admin/registry/{source}/entry", ui.page(entry), methods=["GET"]),
        Route("/admin/registry/{source}/entry", ui.page(install), methods=["POST"]),
    ]
