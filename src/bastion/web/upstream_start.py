"""The start page of a per-user upstream connect flow (`/oauth/upstream/start`).

GET names the upstream and the Bastion account the flow belongs to, with email and password fields.
The form carries a CSRF token that is also a SameSite=Strict cookie and whose hash is kept with the
flow (as on the consent page). A POST signs in through the same throttled login as the REST API; only
the flow's own user passes. That browser then gets an HttpOnly nonce cookie (its hash kept with the
flow) which the callback requires, and is sent on to the provider. No scripts, its own CSP.

With an https base URL both cookies are `__Host-` cookies (Secure, Path=/, no Domain), read only under
those names: a sibling subdomain cannot plant its own flow's nonce in a victim's browser (the callback
would then link the victim's provider account to the attacker's Bastion user). Over http (local use)
browsers refuse the prefix: the plain names, each for its own path.
"""

from __future__ import annotations

import hmac
from datetime import timedelta
from html import escape
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from bastion.control.login import Login
from bastion.control.upstream_connect import FLOW_TTL, START_PATH, UpstreamConnect, same_secret
from bastion.core.errors import BastionError, Forbidden, TooManyRequests, Unauthenticated
from bastion.core.ports import ConnectFlow, IdentityRepo
from bastion.web.asgi import client_ip
from bastion.web.oauth_consent import _STYLE, HOST_PREFIX, _csp

CSRF_COOKIE = "bastion_connect_csrf"
BROWSER_COOKIE = "bastion_connect_browser"
BROWSER_COOKIE_PATH = "/oauth/upstream/"
GONE = "This connect link is unknown, already used or expired. Start again with `bastion upstreams connect`."
_TTL = int(FLOW_TTL / timedelta(seconds=1))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class StartPage:
    def __init__(self, connect: UpstreamConnect, login: Login, identity: IdentityRepo, base_url: str) -> None:
        self._connect = connect
        self._login = login
        self._identity = identity
        self._origin = _origin(base_url)
        self.secure = base_url.startswith("https://")
        prefix, root = (HOST_PREFIX, "/") if self.secure else ("", None)
        self.csrf_cookie = prefix + CSRF_COOKIE
        self.csrf_path = root or START_PATH
        self.browser_cookie = prefix + BROWSER_COOKIE
        """The nonce cookie's name (`__Host-` over https), the only one the callback reads."""
        self.browser_path = root or BROWSER_COOKIE_PATH

    async def handle(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._post(request)
        state = request.query_params.get("state", "")
        flow = await self._connect.pending(state)
        return _message(GONE, 400) if flow is None else await self._form(state, flow)

    async def _form(self, state: str, flow: ConnectFlow, error: str | None = None, status: int = 200) -> Response:
        csrf = await self._connect.new_csrf(state)
        if csrf is None:
            return _message(GONE, 400)
        user = await self._identity.get_user(flow.user)
        account = user.email if user is not None else "?"
        problem = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
        body = (
            f"<h1>Connect your account to {escape(flow.upstream)}</h1>{problem}"
            "<p>Sign in to Bastion to continue to the provider. Only the account that asked for this link can.</p>"
            f"<dl><dt>Upstream</dt><dd>{escape(flow.upstream)}</dd>"
            f"<dt>Bastion account</dt><dd>{escape(account)}</dd></dl>"
            f'<form method="post" action="{START_PATH}">'
            f'<input type="hidden" name="state" value="{escape(state)}">'
            f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
            f'<label>Email <input type="email" name="email" autocomplete="username" required></label>'
            f'<label>Password <input type="password" name="password" autocomplete="current-password" required></label>'
            f'<button type="submit">Continue</button></form>'
        )
        response = _page(body, status, self._connect.authorization_endpoint(flow.upstream))
        response.set_cookie(
            self.csrf_cookie, csrf, max_age=_TTL, path=self.csrf_path, httponly=True, samesite="strict", secure=self.secure
        )
        return response

    async def _post(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin is not None and origin != self._origin:
            return _message("This form may only be sent from Bastion's own page.", 403)
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        state = fields.get("state", "")
        flow = await self._connect.pending(state)
        if flow is None:
            return _message(GONE, 400)
        if not _csrf_ok(fields.get("csrf"), request.cookies.get(self.csrf_cookie), flow.csrf_hash):
            return _message("This form has expired or was not sent from Bastion's page. Reload it and try again.", 403)
        try:
            credentials = {"email": fields.get("email", ""), "password": fields.get("password", "")}
            _session, secret, user = await self._login.login(credentials, client_ip(request.scope))
            try:
                await self._login.logout(secret)  # only the check was wanted, not a session
            except BastionError:
                pass
            nonce, url = await self._connect.admit(state, user.id)
        except TooManyRequests:
            return await self._form(state, flow, "Too many failed sign-ins. Wait a little and try again.", 429)
        except Unauthenticated:
            return await self._form(state, flow, "Wrong email or password.", 401)
        except Forbidden as exc:
            return _message(exc.detail, 403)  # another account: nothing changes, no new form for them
        except BastionError as exc:
            return _message(exc.detail, exc.http_status)
        response = RedirectResponse(url, status_code=303, headers={"cache-control": "no-store"})
        # Lax, not Strict: it must come back on the provider's top-level redirect to the callback.
        response.set_cookie(
            self.browser_cookie,
            nonce,
            max_age=_TTL,
            path=self.browser_path,
            httponly=True,
            samesite="lax",
            secure=self.secure,
        )
        response.delete_cookie(
            self.csrf_cookie, path=self.csrf_path, httponly=True, samesite="strict", secure=self.secure
        )
        return response


def _csrf_ok(posted: str | None, cookie: str | None, stored_hash: str | None) -> bool:
    """The posted token is the Strict cookie's (so the form came from this browser) and the flow's."""
    if not posted or not cookie or not hmac.compare_digest(posted.encode(), cookie.encode()):
        return False
    return same_secret(posted, stored_hash)


def _page(body: str, status: int, provider_url: str | None = None) -> HTMLResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>Bastion: connect an account</title><style>{_STYLE}</style></head><body>{body}</body></html>"
    )
    headers = {
        "content-security-policy": _csp(provider_url),  # the form's answer redirects to the provider
        "x-frame-options": "DENY",
        "cache-control": "no-store",
        "referrer-policy": "no-referrer",  # the page's URL carries the state
    }
    return HTMLResponse(html, status_code=status, headers=headers)


def _message(text: str, status: int) -> HTMLResponse:
    return _page(f"<h1>Bastion</h1><p>{escape(text)}</p>", status)
