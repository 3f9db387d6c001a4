"""REST: /api/v1/teams — admins create and delete teams and manage members; members see their teams."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.control.teams import Teams
from bastion.core.errors import BadRequest, Forbidden, NotFound
from bastion.core.identity import Team, is_admin
from bastion.pipeline.context import Principal
from bastion.web.rest.access import principal_of
from bastion.web.rest.common import read_json, require_object
from bastion.web.rest.listing import paged


def team_json(team: Team) -> dict[str, Any]:
    return {"name": team.name, "members": list(team.members), "created_at": team.created_at.isoformat()}


def _require_admin(principal: Principal) -> None:
    if not is_admin(principal):
        raise Forbidden("only admins manage teams", missing="role:admin")


def _may_see(principal: Principal, team: Team) -> bool:
    return is_admin(principal) or team.name in principal.teams


def team_routes(teams: Teams, max_body: int) -> list[Route]:
    async def create(request: Request) -> Response:
        _require_admin(principal_of(request))
        team = await teams.create(require_object(await read_json(request, max_body)))
        return JSONResponse(team_json(team), status_code=201)

    async def list_teams(request: Request) -> Response:
        principal = principal_of(request)
        return JSONResponse(paged(request, [team_json(t) for t in await teams.list() if _may_see(principal, t)]))

    async def get(request: Request) -> Response:
        principal = principal_of(request)
        name = request.path_params["name"]
        team = await teams.get(name)
        if not _may_see(principal, team):
            raise NotFound(f"team {name!r} does not exist")
        return JSONResponse(team_json(team))

    async def delete(request: Request) -> Response:
        _require_admin(principal_of(request))
        await teams.delete(request.path_params["name"])
        return Response(status_code=204)

    async def add_member(request: Request) -> Response:
        _require_admin(principal_of(request))
        body = require_object(await read_json(request, max_body))
        user = body.get("user")
        if not isinstance(user, str) or set(body) - {"user"}:
            raise BadRequest('add a member with {"user": "<user id or email>"}')
        return JSONResponse(team_json(await teams.add_member(request.path_params["name"], user)))

    async def remove_member(request: Request) -> Response:
        _require_admin(principal_of(request))
        await teams.remove_member(request.path_params["name"], request.path_params["user"])
        return Response(status_code=204)

    return [
        Route("/api/v1/teams", list_teams, methods=["GET"]),
        Route("/api/v1/teams", create, methods=["POST"]),
        Route("/api/v1/teams/{name}", get, methods=["GET"]),
        Route("/api/v1/teams/{name}", delete, methods=["DELETE"]),
        Route("/api/v1/teams/{name}/members", add_member, methods=["POST"]),
        Route("/api/v1/teams/{name}/members/{user}", remove_member, methods=["DELETE"]),
    ]
