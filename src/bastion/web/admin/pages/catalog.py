"""Catalog pages: tools, prompts and resources with search, filters and server-side pages; one item
with its schema, switches, and (tools) the playground."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.web.admin.pages import playground
from bastion.web.admin.pages.insight import usage_summary
from bastion.web.admin.session import Viewer
from bastion.web.admin.shortened import shortened
from bastion.web.admin.ui import Ui, back, page_count, page_of
from bastion.web.asgi import client_ip

KINDS = ("tools", "prompts", "resources")
PAGE = 50


def exposing(servers: list[dict[str, Any]], item: dict[str, Any]) -> list[tuple[str, str]]:
    """(server, the item's name there) for each virtual server that exposes it."""
    out = []
    for server in servers:
        if item["gateway_name"] in (server.get("tools") or []) or item["upstream"] in (server.get("upstreams") or []):
            name = item.get("name_override") or (item["gateway_name"] if server.get("prefix") != "never" else item["original_name"])
            if name in ((server.get("exposed") or {}).get("tools") or []):
                out.append((server["name"], name))
    return out


def routes(ui: Ui) -> list[Route]:
    async def index(request: Request, viewer: Viewer) -> Response:
        kind = request.query_params.get("kind", "tools")
        kind = kind if kind in KINDS else "tools"
        query = {k: request.query_params.get(k, "") for k in ("q", "upstream", "enabled")}
        page, window = page_of(request, PAGE)
        params = {k: v for k, v in query.items() if v} | window
        reply = await ui.api(viewer, "GET", f"/api/v1/{kind}", request, params=params)
        upstreams = (await ui.api(viewer, "GET", "/api/v1/upstreams", request)).items()
        total = reply.body.get("total", 0) if reply.ok and isinstance(reply.body, dict) else 0
        return ui.render(request, viewer, "catalog.html", kind=kind, items=reply.items(), total=total, page=page,
                         pages=page_count(total, PAGE), query=query, upstreams=[u["name"] for u in upstreams],
                         error=None if reply.ok else reply.detail)

    async def show(
        request: Request, viewer: Viewer, result: dict[str, Any] | None = None, status: int = 200, item: Any = None
    ) -> Response:
        """The item's page; `item` when the caller has just read it (a huge tool takes a while to read)."""
        kind, name = request.path_params["kind"], request.path_params["name"]
        if kind not in KINDS:
            return ui.render(request, viewer, "error.html", 404, message="no such catalog")
        if not isinstance(item, dict):
            reply = await ui.api(viewer, "GET", f"/api/v1/{kind}/{quote(name, safe='')}", request)
            if not reply.ok or not isinstance(reply.body, dict):
                return ui.render(request, viewer, "error.html", reply.status, message=reply.detail)
            item = reply.body
        servers = exposing((await ui.api(viewer, "GET", "/api/v1/servers", request)).items(), item) if kind == "tools" else []
        schema = item.get("input_schema")
        usage = await usage_summary(ui, viewer, request, "day", item=item["name"]) if viewer.is_admin else None
        (schema_shown, cut), (item_shown, item_cut) = shortened(schema), shortened(item)
        return ui.render(request, viewer, "item.html", status, kind=kind, item=item, servers=servers, usage=usage,
                         fields=playground.fields(schema), more_fields=playground.left_out(schema),
                         schema_json=json.dumps(schema_shown, indent=2), definition=json.dumps(item_shown, indent=2),
                         shortened=cut or item_cut, result=result)

    async def act(request: Request, viewer: Viewer) -> Response:
        kind, name = request.path_params["kind"], request.path_params["name"]
        if kind not in KINDS:  # else any API collection would be patched, or its URL could not be made (a 500)
            return ui.render(request, viewer, "error.html", 404, message="no such catalog")
        form = await request.form()
        here = f"/admin/catalog/{kind}/{quote(name, safe='')}"
        if form.get("action") == "call" and kind == "tools":
            reply = await ui.api(viewer, "GET", f"/api/v1/tools/{quote(name, safe='')}", request)
            item = reply.body if reply.ok and isinstance(reply.body, dict) else None
            schema = item.get("input_schema") if item is not None else None
            try:
                args = playground.arguments(schema, form)
            except ValueError as exc:
                return await show(request, viewer, {"error": str(exc)}, 400, item)
            server, _, tool = str(form.get("target") or "").partition("|")
            if not server or not tool:
                return await show(request, viewer, {"error": "choose a virtual server to call it through"}, 400, item)
            # A server the user may not see is answered as one that does not exist, as by the API
            seen = await ui.api(viewer, "GET", f"/api/v1/servers/{quote(server, safe='')}", request)
            if not seen.ok:
                return await show(request, viewer, {"error": seen.detail}, seen.status, item)
            outcome = await playground.call(ui.backend, viewer.token, client_ip(request.scope), server, tool, args)
            outcome["server"], outcome["arguments"] = server, json.dumps(args, indent=2)
            return await show(request, viewer, outcome, outcome.pop("status", 200), item=item)
        body: dict[str, Any]
        if form.get("action") in ("enable", "disable"):
            body = {"enabled": form.get("action") == "enable"}
        elif form.get("action") == "edit":
            body = {"name": str(form.get("rename") or "") or None, "description": str(form.get("description") or "") or None}
            if kind != "tools" and kind != "prompts":
                body.pop("name")
        else:
            return back(here, error="unknown action")
        reply = await ui.api(viewer, "PATCH", f"/api/v1/{kind}/{quote(name, safe='')}", request, body=body)
        return back(here, note="Saved") if reply.ok else back(here, error=reply.detail)

    return [
        Route("/admin/catalog", ui.page(index), methods=["GET"]),
        Route("/admin/catalog/{kind}/{name:path}", ui.page(show), methods=["GET"]),
        Route("/admin/catalog/{kind}/{name:path}", ui.page(act), methods=["POST"]),
    ]
