"""Sign in (local account) and sign out. The admin token is never typed into a browser."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bastion.web.admin.session import Viewer
from bastion.web.admin.ui import Ui, form_of

_LOGIN_FIELDS = 8
"""email, password, next and csrf, and room for a browser's extra."""


def landing(raw: object) -> str:
    """Where to go after signing in: one of our own pages, else the dashboard."""
    target = str(raw or "/admin")
    # Only our own pages: no scheme, no host, no protocol-relative or backslash tricks; and short,
    # since it rides in a cookie during a provider sign-in.
    ours = target.startswith("/admin") and "//" not in target and "\\" not in target
    return target if ours and len(target) <= 1000 else "/admin"


def login_page(ui: Ui, request: Request, status: int = 200, **context: Any) -> Response:
    """The sign-in page, its form carrying a CSRF token that matches a cookie set with it (a sign-in
    has no session to bind one to: another site must not sign this browser in as someone else)."""
    token = ui.sessions.login_csrf(request)
    response = ui.render(request, None, "login.html", status, login_csrf=token, **context)
    ui.sessions.sign_in_form(response, token)
    return response


LogoutHook = Callable[[Request], Awaitable[Response | None]]
"""What else signing out does (the provider's sign-out): the response to send instead, or None."""


def routes(ui: Ui, logout_hook: LogoutHook | None = None) -> list[Route]:
    async def show(request: Request) -> Response:
        if await ui.viewer(request) is not None:
            return RedirectResponse(landing(request.query_params.get("next")), status_code=303)
        return login_page(ui, request, next=landing(request.query_params.get("next")))

    async def login(request: Request) -> Response:
        form = await form_of(request, _LOGIN_FIELDS)
        if isinstance(form, str):
            return login_page(ui, request, 400, next="/admin", error=form)
        email, password = str(form.get("email") or ""), str(form.get("password") or "")
        target = landing(form.get("next"))
        if not ui.sessions.same_origin(request):
            # Login CSRF: another site's form would sign this browser in as the attacker's account.
            return login_page(ui, request, 403, next=target, error="Sign in from Bastion's own page.")
        if not ui.sessions.login_form_ok(request, form.get("csrf")):
            return login_page(ui, request, 403, next=target, email=email, error="This sign-in form has expired; sign in again.")
        reply = await ui.api(None, "POST", "/api/v1/auth/login", request, body={"email": email, "password": password})
        if not reply.ok or not isinstance(reply.body, dict):
            status = 429 if reply.status == 429 else 401 if reply.status in (400, 401) else reply.status
            return login_page(ui, request, status, next=target, email=email, error=reply.detail)
        token = str(reply.body["token"])
        expires = datetime.fromisoformat(str(reply.body["expires_at"]))
        response = RedirectResponse(target, status_code=303)
        ui.sessions.sign_in(response, token, max(1, int((expires - datetime.now(UTC)).total_seconds())))
        ui.sessions.used_sign_in_form(response)
        ui.sessions.forget_provider(response)  # someone else's provider sign-in in this browser is not theirs to end
        return response

    async def logout(request: Request, viewer: Viewer) -> Response:
        await ui.api(viewer, "POST", "/api/v1/auth/logout", request)
        response = (await logout_hook(request) if logout_hook is not None else None) or RedirectResponse("/admin/login", status_code=303)
        ui.sessions.sign_out(response)
        return response

    return [
        Route("/admin/login", show, methods=["GET"]),
        Route("/admin/login", login, methods=["POST"]),
        Route("/admin/logout", ui.page(logout), methods=["POST"]),
    ]
