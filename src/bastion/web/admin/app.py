"""The admin UI as one ASGI app under /admin: pages, and the package's own static files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion import __version__
from bastion.web.admin.backend import Backend
from bastion.web.admin.pages import catalog, dashboard, insight, oidc, people, servers, signin, tokens, trust, upstreams
from bastion.web.admin.pages.oidc import ProviderSignIn
from bastion.web.admin.session import Sessions
from bastion.web.admin.ui import Ui
from bastion.web.headers import with_headers

PREFIX = "/admin"
STATIC = Path(__file__).parent / "static"


def admin_app(
    gateway_app: Callable[[], ASGIApp], base_url: str, csrf_key: bytes, provider: ProviderSignIn | None = None
) -> ASGIApp:
    """The UI; `gateway_app` is the running gateway's whole ASGI app, which the pages call in process;
    with `provider`, people may also sign in with the external identity provider."""
    name = provider.name if provider is not None else None
    ui = Ui(Backend(gateway_app, base_url), Sessions(csrf_key, base_url), __version__, name)

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

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await pages(scope, receive, with_headers(send, _SAME_ORIGIN_REFERRER))

    return app


# Browsers send `Origin: null` on form posts from pages with `Referrer-Policy: no-referrer`, so the
# UI's pages say `same-origin` (nothing leaves for other sites) and a post's Origin can be checked.
_SAME_ORIGIN_REFERRER = ((b"referrer-policy", b"same-origin"),)
