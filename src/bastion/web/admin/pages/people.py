"""Users and teams (admins manage; everyone sees their own teams)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.web.admin.pages.forms import errors_for
from bastion.web.admin.session import Viewer
from bastion.web.admin.ui import Ui, back

ROLES = ("viewer", "developer", "admin")


def routes(ui: Ui) -> list[Route]:
    async def users_page(request: Request, viewer: Viewer, status: int = 200, **extra: Any) -> Response:
        users = await ui.api(viewer, "GET", "/api/v1/users", request)
        if not users.ok:
            return ui.render(request, viewer, "error.html", users.status, message=users.detail)
        return ui.render(request, viewer, "users.html", status, users=users.items(), roles=ROLES, **extra)

    async def users_index(request: Request, viewer: Viewer) -> Response:
        return await users_page(request, viewer)

    async def user_create(request: Request, viewer: Viewer) -> Response:
        form = await request.form()
        body = {k: str(form.get(k) or "") for k in ("email", "password", "role")}
        reply = await ui.api(viewer, "POST", "/api/v1/users", request, body=body)
        if not reply.ok:
            return await users_page(request, viewer, reply.status, form={"email": body["email"], "role": body["role"]},
                                    **errors_for(reply.detail, ("email", "password", "role")))
        return back("/admin/users", note=f"Created {body['email']}")

    async def user_act(request: Request, viewer: Viewer) -> Response:
        user = quote(request.path_params["id"], safe="")
        form = await request.form()
        action = form.get("action")
        if action == "delete":
            reply = await ui.api(viewer, "DELETE", f"/api/v1/users/{user}", request)
        else:
            body: dict[str, Any] = {"role": str(form.get("role") or "")}
            body["active"] = form.get("active") == "on"
            reply = await ui.api(viewer, "PATCH", f"/api/v1/users/{user}", request, body=body)
        return back("/admin/users", note="Saved") if reply.ok else back("/admin/users", error=reply.detail)

    async def teams_index(request: Request, viewer: Viewer) -> Response:
        teams = (await ui.api(viewer, "GET", "/api/v1/teams", request)).items()
        users = await ui.api(viewer, "GET", "/api/v1/users", request) if viewer.is_admin else None
        emails = {u["id"]: u["email"] for u in users.items()} if users is not None else {}
        return ui.render(request, viewer, "teams.html", teams=teams, emails=emails)

    async def team_create(request: Request, viewer: Viewer) -> Response:
        name = str((await request.form()).get("name") or "").strip()
        reply = await ui.api(viewer, "POST", "/api/v1/teams", request, body={"name": name})
        return back("/admin/teams", note=f"Created {name}") if reply.ok else back("/admin/teams", error=reply.detail)

    async def team_act(request: Request, viewer: Viewer) -> Response:
        team = quote(request.path_params["name"], safe="")
        form = await request.form()
        action, member = form.get("action"), str(form.get("user") or "").strip()
        if action == "add":
            reply = await ui.api(viewer, "POST", f"/api/v1/teams/{team}/members", request, body={"user": member})
        elif action == "remove-member":
            reply = await ui.api(viewer, "DELETE", f"/api/v1/teams/{team}/members/{quote(member, safe='')}", request)
        elif action == "delete":
            reply = await ui.api(viewer, "DELETE", f"/api/v1/teams/{team}", request)
        else:
            return back("/admin/teams", error="unknown action")
        return back("/admin/teams", note="Saved") if reply.ok else back("/admin/teams", error=reply.detail)

    return [
        Route("/admin/users", ui.page(users_index), methods=["GET"]),
        Route("/admin/users", ui.page(user_create), methods=["POST"]),
        Route("/admin/users/{id}", ui.page(user_act), methods=["POST"]),
        Route("/admin/teams", ui.page(teams_index), methods=["GET"]),
        Route("/admin/teams", ui.page(team_create), methods=["POST"]),
        Route("/admin/teams/{name}", ui.page(team_act), methods=["POST"]),
    ]
