"""Signing in to the UI: the session token lives in an HttpOnly, SameSite=Strict cookie; every form
carries a CSRF token bound to that session (the sign-in form, one bound to a short-lived cookie of its
own); a POST from any Origin but Bastion's own is refused.

With an https public URL these cookies, and those of a sign-in with the identity provider (its flow,
and the ID token kept for signing out there), are `__Host-` cookies (Secure, Path=/, no Domain): a
browser accepts them only from this host over https, so no sibling subdomain (nor this host over
plain http) can set one in its place, such as an attacker's own session, sign-in token or provider
sign-in flow; and only those names are read. Over http (local use) browsers refuse the prefix: the
plain names, each for its own path."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

HOST_PREFIX = "__Host-"
"""Of a cookie only this host may set, over https, for Path=/ and no Domain (RFC 6265bis 4.1.3.2)."""
COOKIE = "bastion_ui"
PATH = "/admin"
PROVIDER_COOKIE = "bastion_oidc_session"
"""Set by a sign-in with the identity provider (its ID token, sealed): sign-out goes on to the provider."""
LOGIN_COOKIE = "bastion_login_csrf"
LOGIN_PATH = "/admin/login"
LOGIN_TTL = 3600
"""How long a sign-in form may be sent, s (then it is shown again, with a fresh token)."""


@dataclass
class Viewer:
    """The signed-in user as the UI needs them (from /api/v1/auth/me)."""

    token: str
    email: str
    role: str
    teams: list[str] = field(default_factory=list)
    csrf: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def can_edit(self) -> bool:
        return self.role in ("admin", "developer")


class Sessions:
    def __init__(self, key: bytes, base_url: str, public_url: str | None = None) -> None:
        self._key = key
        self._secure = base_url.startswith("https://")
        self._origin = _origin(public_url) if public_url else None
        prefix = HOST_PREFIX if self._secure else ""
        self.cookie = prefix + COOKIE
        """The session cookie's name (`__Host-` over https)."""
        self.login_cookie = prefix + LOGIN_COOKIE
        """The sign-in form's cookie's name (`__Host-` over https)."""
        self._path = self.path_for(PATH)
        self._login_path = self.path_for(LOGIN_PATH)
        self.provider_cookie = self.name_for(PROVIDER_COOKIE)
        """The cookie keeping a provider sign-in's ID token (`__Host-` over https)."""

    def name_for(self, cookie: str) -> str:
        """A cookie's name here: `__Host-` prefixed when cookies are Secure (see the module's doc)."""
        return HOST_PREFIX + cookie if self._secure else cookie

    def path_for(self, path: str) -> str:
        """A cookie's path here: "/" when it is a `__Host-` cookie (the prefix requires it), else `path`."""
        return "/" if self._secure else path

    @property
    def secure(self) -> bool:
        """Whether cookies must say Secure (the public URL is https)."""
        return self._secure

    def token(self, request: Request) -> str | None:
        value = request.cookies.get(self.cookie)
        # ASCII only: it becomes an Authorization header (anything else was a UnicodeEncodeError, a 500)
        return value if value and value.startswith("bss_") and len(value) < 200 and value.isascii() else None

    def csrf_for(self, token: str) -> str:
        digest = hashlib.sha256(token.encode()).digest()
        return hmac.new(self._key, b"bastion-ui-csrf|" + digest, hashlib.sha256).hexdigest()

    def own_origin(self, request: Request) -> str:
        """Bastion's origin: its public URL's, else the one this request was sent to."""
        return self._origin or f"{request.url.scheme}://{request.url.netloc}"

    def same_origin(self, request: Request) -> bool:
        """Whether a POST comes from our own pages, when the browser says where it comes from. Only
        Bastion's own origin: not the MCP endpoint's allowance for local clients (a page on another
        localhost port is another site's page)."""
        origin = request.headers.get("origin")
        return origin is None or origin == self.own_origin(request)

    def login_csrf(self, request: Request) -> str:
        """The sign-in form's CSRF token: this browser's, while it has a good while left; else a new one
        (`sign_in_form` sets it as the cookie the form must match)."""
        kept = request.cookies.get(self.login_cookie)
        if kept is not None and self._login_expiry(kept) > time.time() + LOGIN_TTL / 2:
            return kept
        stamped = f"{int(time.time()) + LOGIN_TTL}.{secrets.token_urlsafe(16)}"
        return f"{stamped}.{self._login_mac(stamped)}"

    def sign_in_form(self, response: Response, token: str) -> None:
        response.set_cookie(
            self.login_cookie,
            token,
            max_age=LOGIN_TTL,
            path=self._login_path,
            secure=self._secure,
            httponly=True,
            samesite="strict",
        )

    def login_form_ok(self, request: Request, sent: object) -> bool:
        """A sign-in POST carries the token of the cookie this browser was given with the form
        (signed double submit), before it expires."""
        cookie = request.cookies.get(self.login_cookie)
        if not isinstance(sent, str) or not cookie or not sent.isascii() or not cookie.isascii():
            return False
        return hmac.compare_digest(sent.encode(), cookie.encode()) and self._login_expiry(cookie) > time.time()

    def _login_mac(self, stamped: str) -> str:
        return hmac.new(self._key, b"bastion-ui-login|" + stamped.encode(), hashlib.sha256).hexdigest()

    def _login_expiry(self, token: str) -> float:
        """When a sign-in form token of ours expires; 0 for one that is not ours."""
        stamped, _, mac = token.rpartition(".")
        if not stamped or not mac.isascii() or not hmac.compare_digest(mac.encode(), self._login_mac(stamped).encode()):
            return 0
        expires = stamped.partition(".")[0]
        return float(expires) if expires.isdigit() and len(expires) < 12 else 0

    def form_ok(self, request: Request, token: str, form: Any) -> bool:
        """A POST is ours: same Origin (when the browser says one) and the session's CSRF token."""
        if not self.same_origin(request):
            return False
        sent = form.get("csrf") if form is not None else None
        return isinstance(sent, str) and hmac.compare_digest(sent.encode(), self.csrf_for(token).encode())

    def sign_in(self, response: Response, token: str, max_age: int) -> None:
        response.set_cookie(
            self.cookie, token, max_age=max_age, path=self._path, secure=self._secure, httponly=True, samesite="strict"
        )

    def forget_provider(self, response: Response) -> None:
        """This browser's next sign-out is Bastion's only (a password sign-in after a provider's)."""
        response.delete_cookie(
            self.provider_cookie, path=self._path, secure=self._secure, httponly=True, samesite="strict"
        )

    def sign_out(self, response: Response) -> None:
        response.delete_cookie(self.cookie, path=self._path, secure=self._secure, httponly=True, samesite="strict")

    def used_sign_in_form(self, response: Response) -> None:
        """The sign-in form's token is used up."""
        response.delete_cookie(
            self.login_cookie, path=self._login_path, secure=self._secure, httponly=True, samesite="strict"
        )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
