"""Sign in (local account) and sign out. The admin token is never typed into a browser."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bastion.web.admin.session import Viewer
from bastion.web.admin.ui import Ui


def landing(raw: object) -> str:
    """Where to go after signing in: one of our own pages, else the dashboard."""
    target = str(raw or "/admin")
    # Only our own pages: no scheme, no host, no protocol-relative or backslash tricks; and short,
    # since it rides in a cookie during a provider sign-in.
    ours = target.startswith("/admin") and "//" not in target and "\\" not in target
    return target if ours and len(target) <= 1000 else "/admin"


LogoutHook = Callable[[Request], Awaitable[Response | None]]
"""What else signing out does (the provider's sign-out): the response to send instead, or None."""


def routes(ui: Ui, logout_hook: LogoutHook | None = None) -> list[Route]:
    async def login_page(request: Request) -> Response:
        if await ui.viewer(request) is not None:
            return RedirectResponse(landing(request.query_params.get("next")), status_code=303)
        return ui.render(request, None, "login.html", next=landing(request.query_params.get("next")))

    async def login(request: Request) -> Response:
        form = await request.form()
        email, password = str(form.get("email") or ""), str(form.get("password") or "")
        target = landing(form.get("next"))
        if not ui.sessions.same_origin(request):
            # Login CSRF: another site's form would sign this browser in as the attacker's account.
            return ui.render(request, None, "login.html", 403, next=target, error="Sign in from Bastion's own page.")
        reply = await ui.api(None, "POST", "/api/v1/auth/login", request, body={"email": email, "password": password})
        if not reply.ok or not isinstance(reply.body, dict):
            status = 429 if reply.status == 429 else 401 if reply.status in (400, 401) else reply.status
            return ui.render(request, None, "login.html", status, next=target, email=email, error=reply.detail)
        token = str(reply.body["token"])
        expires = datetime.fromisoformat(str(reply.body["expires_at"]))
        response = RedirectResponse(target, status_code=303)
        ui.sessions.sign_in(response, token, max(1, int((expires - datetime.now(UTC)).total_seconds())))
        ui.sessions.forget_provider(response)  # someone else's provider sign-in in this browser is not theirs to end
        return response

    async def logout(request: Request, viewer: Viewer) -> Response:
        await ui.api(viewer, "POST", "/api/v1/auth/logout", request)
        response = (await logout_hook(request) if logout_hook is not None else None) or RedirectResponse("/admin/login", status_code=303)
        ui.sessions.sign_out(response)
        return response

    return [
        Route("/admin/login", login_page, methods=["GET"]),
        Route("/admin/login", login, methods=["POST"]),
        Route("/admin/logout", ui.page(logout), methods=["POST"]),
    ]
