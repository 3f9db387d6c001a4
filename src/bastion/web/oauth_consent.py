"""The login and consent page of Bastion's authorization server (`/oauth/consent`).

GET shows who asks (the client), for what (the virtual server, the scopes), and where the answer
goes (the redirect URI's host), with email and password fields and Allow/Deny. A client names
itself: its name is shown as unverified, never as the headline; what is known for sure is the host
its metadata document was fetched from (for a metadata-document client) and the redirect host. The form carries a CSRF token that is also set as a SameSite=Strict cookie
and whose hash is kept with the pending request: a POST needs all three to agree. Signing in goes
through the same login as the REST API (same brute-force throttle); the user must be allowed to
use the virtual server. The page is self-contained: no scripts, no external assets, its own CSP.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from html import escape
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from bastion.auth.oauth.provider import AuthorizationServer, digest
from bastion.auth.tokens import user_principal
from bastion.control.login import Login
from bastion.core.errors import BastionError, Forbidden, TooManyRequests, Unauthenticated
from bastion.core.hidden_text import reveal
from bastion.core.identity import authorize_role
from bastion.core.oauth import PendingAuthorization
from bastion.pipeline.context import Principal
from bastion.web.asgi import client_ip

COOKIE = "bastion_consent_csrf"
CONSENT_PATH = "/oauth/consent"
HOST_PREFIX = "__Host-"
"""Of a cookie only this host may set, over https, for Path=/ and no Domain (RFC 6265bis 4.1.3.2)."""
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#222}"
    "h1{font-size:1.3rem}dl{background:#f5f5f5;padding:.8rem;border-radius:6px}dt{font-weight:600}"
    "dd{margin:0 0 .5rem 0;word-break:break-all}label{display:block;margin:.6rem 0}"
    "input[type=email],input[type=password]{width:100%;padding:.4rem;box-sizing:border-box}"
    "button{padding:.5rem 1.2rem;margin-right:.5rem}.error{color:#a00}"
)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class ConsentPage:
    def __init__(self, server: AuthorizationServer, login: Login, may_use: Callable[[Principal, str], bool]) -> None:
        self._server = server
        self._login = login
        self._may_use = may_use
        self._secure = server.config.issuer.startswith("https://")
        # Over https a `__Host-` cookie (Secure, Path=/, no Domain), read only by that name: no sibling
        # subdomain can plant one. Over http (local use) browsers refuse the prefix: the plain name.
        self.cookie = HOST_PREFIX + COOKIE if self._secure else COOKIE
        self.cookie_path = "/" if self._secure else CONSENT_PATH

    async def handle(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._post(request)
        pending = await self._server.pending(request.query_params.get("request", ""))
        if pending is None:
            return _message("This sign-in request is unknown or has expired. Start again from your application.", 400)
        return await self._form(pending)

    async def _form(self, pending: PendingAuthorization, error: str | None = None, status: int = 200) -> Response:
        client = await self._server.clients.get(pending.client_id)
        csrf = await self._server.new_csrf(pending.id)
        name = client.client_name if client is not None and client.client_name else "(no name given)"
        server = self._server.server_of(pending.resource) or "?"
        problem = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
        body = (
            f"<h1>An application asks to use Bastion on your behalf</h1>{problem}"
            # <bdi> and reveal(): a name's bidi controls reorder neither it nor the warning after it.
            f"<dl><dt>Application</dt><dd><bdi>{escape(reveal(name))}</bdi> <small>(unverified: the name it gave itself)</small>"
            f"<br><small>{escape(_identified_by(pending.client_id))}</small></dd>"
            f"<dt>Virtual server</dt><dd>{escape(server)}</dd>"
            f"<dt>Access</dt><dd>{escape(' '.join(pending.scopes))}</dd>"
            f"<dt>Your authorization goes to</dt><dd><strong>{escape(_target(pending.redirect_uri))}</strong>"
            f"<br><small>{escape(pending.redirect_uri)}</small></dd></dl>"
            "<p><small>Allow only if you started this sign-in and know the application.</small></p>"
            f'<form method="post" action="/oauth/consent">'
            f'<input type="hidden" name="request" value="{escape(pending.id)}">'
            f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
            f'<label>Email <input type="email" name="email" autocomplete="username" required></label>'
            f'<label>Password <input type="password" name="password" autocomplete="current-password" required></label>'
            f'<button type="submit" name="action" value="allow">Allow</button>'
            f'<button type="submit" name="action" value="deny" formnovalidate>Deny</button></form>'
        )
        response = _page(body, status, pending.redirect_uri)
        response.set_cookie(
            self.cookie,
            csrf,
            max_age=int(self._server.config.consent_ttl),
            path=self.cookie_path,
            httponly=True,
            samesite="strict",
            secure=self._secure,
        )
        return response

    async def _post(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin is not None and origin != _origin(self._server.config.issuer):
            return _message("This form may only be sent from Bastion's own page.", 403)
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        pending = await self._server.pending(fields.get("request", ""))
        if pending is None:
            return _message("This sign-in request is unknown or has expired. Start again from your application.", 400)
        if not _csrf_ok(fields.get("csrf"), request.cookies.get(self.cookie), pending.csrf_hash):
            return _message("This form has expired or was not sent from Bastion's page. Reload it and try again.", 403)
        try:
            if fields.get("action") == "deny":
                return _redirect(await self._server.answer(pending, None))
            if fields.get("action") != "allow":
                return await self._form(pending, "Choose Allow or Deny.", 400)
            user_id = await self._sign_in(fields, request, pending)
            return _redirect(await self._server.answer(pending, user_id))
        except LookupError:
            return _message("This sign-in request was answered already.", 400)
        except TooManyRequests:
            return await self._form(pending, "Too many failed sign-ins. Wait a little and try again.", 429)
        except Unauthenticated:
            return await self._form(pending, "Wrong email or password.", 401)
        except Forbidden as exc:
            return await self._form(pending, exc.detail, 403)

    async def _sign_in(self, fields: dict[str, str], request: Request, pending: PendingAuthorization) -> str:
        """The id of the user these credentials sign in, if they may use the requested server."""
        credentials = {"email": fields.get("email", ""), "password": fields.get("password", "")}
        _session, secret, user = await self._login.login(credentials, client_ip(request.scope))
        try:
            await self._login.logout(secret)  # only the check was wanted, not a session
        except BastionError:
            pass
        server = self._server.server_of(pending.resource) or ""
        if not self._may_use(user_principal(user), server):
            raise Forbidden("This account may not use this virtual server.")
        try:
            authorize_role(user.role, "POST", f"/servers/{server}/mcp")
        except Forbidden:
            raise Forbidden("This account's role may not use virtual servers.") from None
        return user.id


def _identified_by(client_id: str) -> str:
    if client_id.startswith(("https://", "http://")):
        return f"identified by a metadata document on {urlsplit(client_id).hostname}"
    return "registered itself with Bastion moments ago; Bastion does not know who runs it"


def _target(redirect_uri: str) -> str:
    """Where the authorization code is sent: the host of an http(s) URI; for a native app's own
    scheme, the app the device opens for it. Such a URI's "host" is only text the app reads
    (`evil://login.microsoftonline.com/cb`): naming it would name a site the code never reaches."""
    parts = urlsplit(redirect_uri)
    if parts.scheme.lower() in ("http", "https") and parts.hostname:
        return parts.hostname
    return f"the application registered for {parts.scheme}:"


def _csrf_ok(posted: str | None, cookie: str | None, stored_hash: str | None) -> bool:
    if not posted or not cookie or stored_hash is None:
        return False
    same = hmac.compare_digest(posted.encode(), cookie.encode())
    return same and hmac.compare_digest(digest(posted).encode(), stored_hash.encode())


def _source(url: str) -> str:
    """`url` as a CSP source expression: its origin (http/https) or its scheme (an app's own scheme)."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        return _origin(url) if re.fullmatch(r"[A-Za-z0-9.:\[\]-]+", parts.netloc) else ""
    return f"{parts.scheme}:" if re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", parts.scheme) else ""


def _csp(redirect_uri: str | None) -> str:
    # Browsers apply form-action to the redirect that answers the form, so the client's target is listed.
    targets = "'self'" + (f" {_source(redirect_uri)}" if redirect_uri else "")
    return f"default-src 'none'; style-src 'unsafe-inline'; form-action {targets}; frame-ancestors 'none'"


def _page(body: str, status: int, redirect_uri: str | None = None) -> HTMLResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>Bastion sign-in</title><style>{_STYLE}</style></head><body>{body}</body></html>"
    )
    headers = {"content-security-policy": _csp(redirect_uri), "x-frame-options": "DENY", "cache-control": "no-store"}
    return HTMLResponse(html, status_code=status, headers=headers)


def _message(text: str, status: int) -> HTMLResponse:
    return _page(f"<h1>Bastion sign-in</h1><p>{escape(text)}</p>", status)


def _redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303, headers={"cache-control": "no-store"})
