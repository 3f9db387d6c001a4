"""Upstream pages: list with status, add (every transport), show, edit, enable/disable, refresh, remove."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.web.admin.pages.forms import errors_for, lines, pairs
from bastion.web.admin.session import Viewer
from bastion.web.admin.ui import Ui, back

TRANSPORTS = ("streamable-http", "sse", "stdio")
_FIELDS = ("name", "transport", "url", "command", "args", "headers", "env", "team", "visibility", "isolation")


def _body(form: Any) -> dict[str, Any]:
    transport = str(form.get("transport") or "")
    body: dict[str, Any] = {"name": str(form.get("name") or "").strip(), "transport": transport}
    if transport == "stdio":
        body["command"] = str(form.get("command") or "").strip()
        body["args"] = lines(form.get("args"))
        body["env"] = pairs(form.get("env"))
    else:
        body["url"] = str(form.get("url") or "").strip()
        body["headers"] = pairs(form.get("headers"))
    for key in ("team", "visibility", "isolation"):
        value = str(form.get(key) or "").strip()
        if value:
            body[key] = value
    return body


def _users_of(servers: list[dict[str, Any]], name: str) -> list[str]:
    prefix = f"{name}__"
    return [
        s["name"]
        for s in servers
        if name in (s.get("upstreams") or [])
        or any(str(t).startswith(prefix) for f in ("tools", "prompts", "resources") for t in s.get(f) or [])
    ]


def routes(ui: Ui) -> list[Route]:
    async def index(request: Request, viewer: Viewer) -> Response:
        upstreams = (await ui.api(viewer, "GET", "/api/v1/upstreams", request)).items()
        return ui.render(request, viewer, "upstreams.html", upstreams=upstreams)

    async def new(request: Request, viewer: Viewer) -> Response:
        return ui.render(request, viewer, "upstream_new.html", transports=TRANSPORTS, form={})

    async def create(request: Request, viewer: Viewer) -> Response:
        form = await request.form()
        try:
            body = _body(form)
        except ValueError as exc:
            return ui.render(request, viewer, "upstream_new.html", 400, transports=TRANSPORTS, form=form,
                             errors={"headers" if form.get("transport") != "stdio" else "env": str(exc)})
        reply = await ui.api(viewer, "POST", "/api/v1/upstreams", request, body=body)
        if not reply.ok:
            return ui.render(request, viewer, "upstream_new.html", reply.status, transports=TRANSPORTS, form=form,
                             **errors_for(reply.detail, _FIELDS))
        return back(f"/admin/upstreams/{quote(body['name'], safe='')}", note=f"Registered {body['name']}")

    async def show(request: Request, viewer: Viewer) -> Response:
        name = request.path_params["name"]
        reply = await ui.api(viewer, "GET", f"/api/v1/upstreams/{quote(name, safe='')}", request)
        if not reply.ok:
            return ui.render(request, viewer, "error.html", reply.status, message=reply.detail)
        servers = (await ui.api(viewer, "GET", "/api/v1/servers", request)).items()
        tools = await ui.api(viewer, "GET", "/api/v1/tools", request, params={"upstream": name, "limit": "200"})
        return ui.render(request, viewer, "upstream.html", upstream=reply.body, used_by=_users_of(servers, name),
                         tools=tools.items(), total_tools=(tools.body or {}).get("total", 0) if tools.ok else 0)

    async def act(request: Request, viewer: Viewer) -> Response:
        name = quote(request.path_params["name"], safe="")
        form = await request.form()
        action = form.get("action")
        here = f"/admin/upstreams/{name}"
        if action in ("enable", "disable"):
            reply = await ui.api(viewer, "PATCH", f"/api/v1/upstreams/{name}", request, body={"enabled": action == "enable"})
        elif action == "refresh":
            reply = await ui.api(viewer, "POST", f"/api/v1/upstreams/{name}/refresh", request)
        elif action == "delete":
            params = {"force": "true"} if form.get("force") else None
            reply = await ui.api(viewer, "DELETE", f"/api/v1/upstreams/{name}", request, params=params)
            if reply.ok:
                return back("/admin/upstreams", note=f"Removed {name}")
        elif action == "edit":
            body: dict[str, Any] = {}
            if form.get("url"):
                body["url"] = str(form.get("url")).strip()
            try:
                if form.get("headers"):
                    body["headers"] = pairs(form.get("headers"))
            except ValueError as exc:
                return back(here, error=str(exc))
            reply = await ui.api(viewer, "PATCH", f"/api/v1/upstreams/{name}", request, body=body)
        else:
            return back(here, error="unknown action")
        return back(here, note=f"{str(action).capitalize()}: done") if reply.ok else back(here, error=reply.detail)

    return [
        Route("/admin/upstreams", ui.page(index), methods=["GET"]),
        Route("/admin/upstreams/new", ui.page(new), methods=["GET"]),
        Route("/admin/upstreams/new", ui.page(create), methods=["POST"]),
        Route("/admin/upstreams/{name}", ui.page(show), methods=["GET"]),
        Route("/admin/upstreams/{name}", ui.page(act), methods=["POST"]),
    ]
