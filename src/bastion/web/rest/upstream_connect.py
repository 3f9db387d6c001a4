"""REST: a user connects their own account to a per-user OAuth upstream, and the public callback page.

`POST /api/v1/upstreams/{name}/connect` answers a link to Bastion's start page (web/upstream_start.py),
where the user signs in again and their browser gets a nonce cookie before going on to the provider.
The provider sends the browser back to `GET /oauth/upstream/callback`, which needs no bearer token but
that cookie (the state names the flow, the cookie proves it is its user's browser). `GET|DELETE
.../connection` show or forget the caller's own connection, never the token itself.
"""

from __future__ import annotations

import logging
from html import escape

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bastion.control.upstream_connect import CALLBACK_PATH, START_PATH, UpstreamConnect
from bastion.core.errors import BastionError, CredentialsUnavailable, NotFound
from bastion.web.asgi import PublicEndpoints
from bastion.web.rest.access import principal_of
from bastion.web.upstream_start import StartPage

log = logging.getLogger("bastion.web")

_STYLE = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#222}"
_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",  # the page's URL carries the code and state
}


def _page(title: str, text: str, status: int) -> HTMLResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1><p>{escape(text)}</p></body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def connection_routes(connect: UpstreamConnect) -> list[Route]:
    async def start(request: Request) -> Response:
        url = await connect.start(principal_of(request), request.path_params["name"])
        return JSONResponse({"authorization_url": url, "redirect_uri": connect.redirect_uri})

    async def show(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            connected, problem = await connect.connected(principal_of(request), name), None
        except CredentialsUnavailable as exc:
            connected, problem = False, exc.detail
        return JSONResponse({"upstream": name, "connected": connected, "problem": problem})

    async def forget(request: Request) -> Response:
        name = request.path_params["name"]
        if not await connect.disconnect(principal_of(request), name):
            raise NotFound(f"you have no connection to upstream {name!r}")
        return Response(status_code=204)

    return [
        Route("/api/v1/upstreams/{name}/connect", start, methods=["POST"]),
        Route("/api/v1/upstreams/{name}/connection", show, methods=["GET"]),
        Route("/api/v1/upstreams/{name}/connection", forget, methods=["DELETE"]),
    ]


def callback_endpoint(connect: UpstreamConnect, start: StartPage) -> PublicEndpoints:
    """The start page and the callback, both public (no bearer token)."""

    async def callback(request: Request) -> Response:
        query = request.query_params
        browser = request.cookies.get(start.browser_cookie)
        try:
            name = await connect.finish(query.get("state", ""), query.get("code"), query.get("error"), browser)
            done = f"Your account is connected to upstream {name!r}. You can close this window."
            response = _page("Connected", done, 200)
        except BastionError as exc:
            response = _page("Not connected", exc.detail, exc.http_status)
        if browser is not None:  # one flow per nonce: whatever happened, it is spent
            response.delete_cookie(
                start.browser_cookie, path=start.browser_path, httponly=True, samesite="lax", secure=start.secure
            )
        return response

    async def unexpected(_request: Request, exc: Exception) -> Response:
        log.error("upstream connect page failed: %s", type(exc).__name__)
        return _page("Not connected", "Bastion could not finish connecting your account.", 500)

    app = Starlette(
        routes=[
            Route(CALLBACK_PATH, callback, methods=["GET"]),
            Route(START_PATH, start.handle, methods=["GET", "POST"]),
        ],
        exception_handlers={Exception: unexpected},
    )
    return PublicEndpoints(frozenset({CALLBACK_PATH, START_PATH}), app)


def joined(first: PublicEndpoints | None, second: PublicEndpoints) -> PublicEndpoints:
    """Both sets of public endpoints, each path to its own app."""
    if first is None:
        return second

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        target = second.app if scope.get("path") in second.paths else first.app
        await target(scope, receive, send)

    return PublicEndpoints(first.paths | second.paths, app)
