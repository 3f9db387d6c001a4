"""REST: /api/v1/users — admins create, list, inspect, change (role, active, password) and delete users;
admins, and each user for themself, list and end a user's OAuth grants (`…/{id}/grants`)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.control.users import Users
from bastion.core.errors import Forbidden, NotFound
from bastion.core.identity import User, is_admin
from bastion.core.oauth_grants import UserGrant
from bastion.web.rest.access import principal_of
from bastion.web.rest.common import read_json, require_object
from bastion.web.rest.listing import paged


def user_json(user: User) -> dict[str, Any]:
    """A user as the API shows it: never a password or its hash."""
    return {
        "id": user.id,
        "email": user.email,
        "role": user.role,
        "active": user.active,
        "teams": list(user.teams),
        "created_at": user.created_at.isoformat(),
    }


def grant_json(grant: UserGrant) -> dict[str, Any]:
    """A grant as the API shows it: its client and times, never a token."""
    return {
        "id": grant.id,
        "client_id": grant.client_id,
        "client_name": grant.client_name,
        "resource": grant.resource,
        "scopes": list(grant.scopes),
        "created_at": grant.created_at.isoformat() if grant.created_at else None,
        "last_used_at": grant.last_used_at.isoformat() if grant.last_used_at else None,
        "expires_at": grant.expires_at.isoformat(),
    }


async def _own_or_admin(request: Request, users: Users) -> str:
    """The user the path names, when the caller is an admin or that user; anyone else is refused alike
    whether the user exists or not."""
    principal, key = principal_of(request), str(request.path_params["id"])
    if is_admin(principal):
        return key
    try:
        user = await users.get(key)
    except NotFound:
        user = None
    if user is None or principal.user is None or user.id != principal.user:
        raise Forbidden("only admins manage another user's grants", missing="role:admin")
    return user.id


def _require_admin(request: Request) -> None:
    # The edge's role gate already keeps non-admins out; this holds even if that changes.
    if not is_admin(principal_of(request)):
        raise Forbidden("only admins manage users", missing="role:admin")


def user_routes(users: Users, max_body: int) -> list[Route]:
    async def create(request: Request) -> Response:
        _require_admin(request)
        user = await users.create(require_object(await read_json(request, max_body)))
        return JSONResponse(user_json(user), status_code=201)

    async def list_users(request: Request) -> Response:
        _require_admin(request)
        return JSONResponse(paged(request, [user_json(u) for u in await users.list()]))

    async def get(request: Request) -> Response:
        _require_admin(request)
        return JSONResponse(user_json(await users.get(request.path_params["id"])))

    async def patch(request: Request) -> Response:
        _require_admin(request)
        body = require_object(await read_json(request, max_body))
        return JSONResponse(user_json(await users.patch(request.path_params["id"], body)))

    async def delete(request: Request) -> Response:
        _require_admin(request)
        await users.delete(request.path_params["id"])
        return Response(status_code=204)

    async def list_grants(request: Request) -> Response:
        user, grants = await users.grants(await _own_or_admin(request, users))
        return JSONResponse({"user": user.id, **paged(request, [grant_json(g) for g in grants])})

    async def end_grants(request: Request) -> Response:
        key = await _own_or_admin(request, users)
        return JSONResponse({"revoked": list(await users.end_grants(key, request.path_params.get("grant")))})

    return [
        Route("/api/v1/users", list_users, methods=["GET"]),
        Route("/api/v1/users", create, methods=["POST"]),
        Route("/api/v1/users/{id}", get, methods=["GET"]),
        Route("/api/v1/users/{id}", patch, methods=["PATCH"]),
        Route("/api/v1/users/{id}", delete, methods=["DELETE"]),
        Route("/api/v1/users/{id}/grants", list_grants, methods=["GET"]),
        Route("/api/v1/users/{id}/grants", end_grants, methods=["DELETE"]),
        Route("/api/v1/users/{id}/grants/{grant}", end_grants, methods=["DELETE"]),
    ]
