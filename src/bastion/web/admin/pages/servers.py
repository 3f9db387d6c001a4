"""Virtual server pages: list, create and edit by picking upstreams or single items (a picker that
keeps its selection across searches and pages), policy and rate limits, and copy-ready client configs."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.core.client_config import client_config, mcp_url, sdk_snippet
from bastion.core.hidden_text import reveal
from bastion.web.admin.pages.forms import errors_for, lines
from bastion.web.admin.session import Viewer
from bastion.web.admin.ui import Ui, back
from bastion.web.json_depth import loads

_FIELDS = ("name", "description", "tools", "prompts", "resources", "upstreams", "prefix", "team", "visibility",
           "policy", "rate_limits")
_PICK = 25
_SENT = ("description", "tools", "prompts", "resources", "prefix", "team", "visibility", "policy", "rate_limits")
"""What the edit form always sends, if only empty (unticked upstreams send nothing): an edit missing any
of them is not this form's, and saving it would empty the server."""


def _body(form: Any, *, create: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "description": str(form.get("description") or "").strip() or None,
        "prefix": str(form.get("prefix") or "always"),
        "upstreams": list(form.getlist("upstreams")),
        "tools": lines(form.get("tools")),
        "prompts": lines(form.get("prompts")),
        "resources": lines(form.get("resources")),
    }
    if create:
        body["name"] = str(form.get("name") or "").strip()
    for key in ("team", "visibility"):
        value = str(form.get(key) or "").strip()
        if value:
            body[key] = value
    for key in ("policy", "rate_limits"):
        text = str(form.get(key) or "").strip()
        body[key] = loads(text) if text else None  # ValueError: the caller says which
        # NaN, Infinity and 1e400 parse, but no JSON can carry them to the API (a ValueError too)
        json.dumps(body[key], allow_nan=False)
    return body


def configs(server: str, base_url: str) -> dict[str, str]:
    """Client configurations to copy, each as text."""
    out = {c: json.dumps(client_config(c, server, base_url, None), indent=2) for c in ("vscode", "claude", "cursor")}
    out["sdk"] = sdk_snippet(server, base_url)
    out["curl"] = (
        f"curl -s {mcp_url(base_url, server)} -H 'Authorization: Bearer $TOKEN' -H 'Content-Type: application/json' \\\n"
        "  -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2026-07-28' \\\n"
        "  -H 'Mcp-Method: tools/list' -d '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{\"_meta\":"
        "{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{}}}}'"
    )
    return out


def routes(ui: Ui, base_url: str) -> list[Route]:
    async def form_page(request: Request, viewer: Viewer, server: dict[str, Any] | None, status: int = 200, **extra: Any) -> Response:
        upstreams = (await ui.api(viewer, "GET", "/api/v1/upstreams", request)).items()
        return ui.render(request, viewer, "server_form.html", status, server=server or {}, upstreams=upstreams, **extra)

    async def index(request: Request, viewer: Viewer) -> Response:
        servers = (await ui.api(viewer, "GET", "/api/v1/servers", request)).items()
        return ui.render(request, viewer, "servers.html", servers=servers)

    async def new(request: Request, viewer: Viewer) -> Response:
        return await form_page(request, viewer, None)

    async def save(request: Request, viewer: Viewer) -> Response:
        name = request.path_params.get("name")
        form = await request.form()
        missing = [k for k in _SENT if k not in form] if name is not None else []
        if missing:
            message = f"This form is missing its fields ({', '.join(missing)}); nothing was saved. Reload the page."
            return ui.render(request, viewer, "error.html", 400, message=message)
        try:
            body = _body(form, create=name is None)
        except ValueError as exc:
            echo: dict[str, Any] = {k: form.get(k) for k in form}
            return await form_page(request, viewer, echo, 400, errors={"policy": f"not valid JSON: {exc}"})
        if name is None:
            reply = await ui.api(viewer, "POST", "/api/v1/servers", request, body=body)
        else:
            reply = await ui.api(viewer, "PATCH", f"/api/v1/servers/{quote(name, safe='')}", request, body=body)
        if not reply.ok:
            echo = {k: form.get(k) for k in form}
            echo |= {"name": name or form.get("name"), "upstreams": form.getlist("upstreams")}
            return await form_page(request, viewer, echo, reply.status, editing=name, **errors_for(reply.detail, _FIELDS))
        saved = name or body["name"]
        return back(f"/admin/servers/{quote(saved, safe='')}", note="Saved")

    async def show(request: Request, viewer: Viewer) -> Response:
        name = request.path_params["name"]
        reply = await ui.api(viewer, "GET", f"/api/v1/servers/{quote(name, safe='')}", request)
        if not reply.ok or not isinstance(reply.body, dict):
            return ui.render(request, viewer, "error.html", reply.status, message=reply.detail)
        return ui.render(request, viewer, "server.html", server=reply.body, configs=configs(name, base_url),
                         policy=json.dumps(reply.body.get("policy"), indent=2) if reply.body.get("policy") else "")

    async def edit(request: Request, viewer: Viewer) -> Response:
        name = request.path_params["name"]
        reply = await ui.api(viewer, "GET", f"/api/v1/servers/{quote(name, safe='')}", request)
        if not reply.ok or not isinstance(reply.body, dict):
            return ui.render(request, viewer, "error.html", reply.status, message=reply.detail)
        server = dict(reply.body)
        for key in ("tools", "prompts", "resources"):
            server[key] = "\n".join(server.get(key) or [])
        for key in ("policy", "rate_limits"):
            server[key] = json.dumps(server[key], indent=2) if server.get(key) else ""
        return await form_page(request, viewer, server, editing=name)

    async def remove(request: Request, viewer: Viewer) -> Response:
        name = request.path_params["name"]
        reply = await ui.api(viewer, "DELETE", f"/api/v1/servers/{quote(name, safe='')}", request)
        return back("/admin/servers", note=f"Removed {name}") if reply.ok else back(f"/admin/servers/{name}", error=reply.detail)

    async def picker(request: Request, viewer: Viewer) -> Response:
        """JSON for the item picker: one page of matching catalog items."""
        kind = request.query_params.get("kind", "tools")
        if kind not in ("tools", "prompts", "resources"):
            kind = "tools"
        try:
            offset = max(0, int(request.query_params.get("offset", "0")))
        except ValueError:
            offset = 0
        params = {"q": request.query_params.get("q", ""), "limit": str(_PICK), "offset": str(offset), "enabled": "true"}
        reply = await ui.api(viewer, "GET", f"/api/v1/{kind}", request, params={k: v for k, v in params.items() if v})
        items = [
            # The page's script shows the description as text: written out here, as the pages' own text is.
            {"name": i["gateway_name"], "upstream": i["upstream"], "description": reveal(str(i.get("description") or "")[:140])}
            for i in reply.items()
        ]
        total = reply.body.get("total", 0) if reply.ok and isinstance(reply.body, dict) else 0
        return JSONResponse({"items": items, "total": total, "offset": offset, "limit": _PICK})

    return [
        Route("/admin/servers", ui.page(index), methods=["GET"]),
        Route("/admin/servers/new", ui.page(new), methods=["GET"]),
        Route("/admin/servers/new", ui.page(save), methods=["POST"]),
        Route("/admin/picker", ui.page(picker), methods=["GET"]),
        Route("/admin/servers/{name}", ui.page(show), methods=["GET"]),
        Route("/admin/servers/{name}/edit", ui.page(edit), methods=["GET"]),
        Route("/admin/servers/{name}/edit", ui.page(save), methods=["POST"]),
        Route("/admin/servers/{name}/delete", ui.page(remove), methods=["POST"]),
    ]
