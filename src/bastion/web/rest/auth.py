"""REST: /api/v1/auth — login (email + password for a session token), logout, and who am I."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.auth.tokens import bearer_token
from bastion.control.login import Login
from bastion.control.users import Users
from bastion.web.asgi import client_ip
from bastion.web.rest.access import principal_of
from bastion.web.rest.common import read_json, require_object
from bastion.web.rest.users import user_json

LOGIN_PATH = "/api/v1/auth/login"
# Login bodies are tiny; a big one is refused before it is read (the UI's sign-in form too).
MAX_LOGIN_BODY = 8 * 1024


def auth_routes(login: Login, users: Users) -> list[Route]:
    async def sign_in(request: Request) -> Response:
        body = require_object(await read_json(request, MAX_LOGIN_BODY))
        session, secret, user = await login.login(body, client_ip(request.scope))
        reply = {"token": secret, "expires_at": session.expires_at.isoformat(), "user": user_json(user)}
        # no-store: the one response that carries the secret must not linger in any cache.
        return JSONResponse(reply, headers={"Cache-Control": "no-store"})

    async def sign_out(request: Request) -> Response:
        principal_of(request)
        await login.logout(bearer_token(request.headers.get("authorization")))
        return Response(status_code=204)

    async def me(request: Request) -> Response:
        principal = principal_of(request)
        out: dict[str, Any] = {
            "kind": principal.kind,
            "role": principal.role,
            "teams": sorted(principal.teams),
            "token": principal.token,
            "user": None,
        }
        if principal.user is not None:
            out["user"] = user_json(await users.get(principal.user))
        return JSONResponse(out)

    return [
        Route(LOGIN_PATH, sign_in, methods=["POST"]),
        Route("/api/v1/auth/logout", sign_out, methods=["POST"]),
        Route("/api/v1/auth/me", me, methods=["GET"]),
    ]
