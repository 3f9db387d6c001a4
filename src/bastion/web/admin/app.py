"""The admin UI as one ASGI app under /admin: pages, and the package's own static files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion import __version__
from bastion.web.admin.backend import Backend
from bastion.web.admin.pages import catalog, dashboard, insight, oidc, people, servers, signin, tokens, trust, upstreams
from bastion.web.admin.pages.oidc import ProviderSignIn
from bastion.web.admin.session import LOGIN_PATH, Sessions
from bastion.web.admin.ui import Ui
from bastion.web.body import TOO_LARGE, read_body
from bastion.web.headers import with_headers
from bastion.web.rest.auth import MAX_LOGIN_BODY

PREFIX = "/admin"
STATIC = Path(__file__).parent / "static"
DEFAULT_MAX_BODY = 4 * 1024 * 1024


def admin_app(
    gateway_app: Callable[[], ASGIApp],
    base_url: str,
    csrf_key: bytes,
    provider: ProviderSignIn | None = None,
    *,
    public_url: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
) -> ASGIApp:
    """The UI; `gateway_app` is the running gateway's whole ASGI app, which the pages call in process;
    with `provider`, people may also sign in with the external identity provider. Forms are posted
    from `public_url`'s origin (else the one the UI is served at) in bodies of at most `max_body`
    bytes (the sign-in form, the API login's limit)."""
    name = provider.name if provider is not None else None
    ui = Ui(Backend(gateway_app, base_url), Sessions(csrf_key, base_url, public_url), __version__, name)

    async def not_found(request: Request, _exc: Exception) -> Response:
        viewer = await ui.viewer(request)
        return ui.render(request, viewer, "error.html", 404, message=f"There is no page at {request.url.path}.")

    routes: list[Route | Mount] = [
        *signin.routes(ui, oidc.provider_logout(ui, provider) if provider is not None else None),
        *(oidc.routes(ui, provider) if provider is not None else []),
        *dashboard.routes(ui),
        *upstreams.routes(ui),
        *catalog.routes(ui),
        *servers.routes(ui, base_url),
        *tokens.routes(ui),
        *people.routes(ui),
        *insight.routes(ui),
        *trust.routes(ui),
        Mount(f"{PREFIX}/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    pages = Starlette(routes=routes, exception_handlers={404: not_found})

    async def too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        request = Request(scope, receive)
        message = f"This form is larger than the {limit:,} bytes a form may be."
        await ui.render(request, None, "error.html", 413, message=message)(scope, receive, send)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        send = with_headers(send, _SAME_ORIGIN_REFERRER)
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD"):
            # Before any form is parsed: a body past the limit is refused, and never read to its end.
            limit = MAX_LOGIN_BODY if scope["path"].rstrip("/") == LOGIN_PATH else max_body
            declared = Request(scope).headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                return await too_large(scope, receive, send, limit)
            body = await read_body(receive, limit)
            if body is None:
                return None  # the client went away
            if body is TOO_LARGE:
                return await too_large(scope, receive, send, limit)
            receive = _replay(body, receive)
        await pages(scope, receive, send)

    return app


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` that gives the body already read, then goes on as `receive` (to a disconnect)."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


# Browsers send `Origin: null` on form posts from pages with `Referrer-Policy: no-referrer`, so the
# UI's pages say `same-origin` (nothing leaves for other sites) and a post's Origin can be checked.
_SAME_ORIGIN_REFERRER = ((b"referrer-policy", b"same-origin"),)
