"""Signing in to the UI: the session token lives in an HttpOnly, SameSite=Strict cookie; every form
carries a CSRF token bound to that session; a POST from another Origin is refused."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "bastion_ui"
PATH = "/admin"
PROVIDER_COOKIE = "bastion_oidc_session"
"""Set by a sign-in with the identity provider (its ID token, sealed): sign-out goes on to the provider."""


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
    def __init__(self, key: bytes, base_url: str) -> None:
        self._key = key
        self._secure = base_url.startswith("https://")
        self._origin = _origin(base_url)

    @property
    def secure(self) -> bool:
        """Whether cookies must say Secure (the public URL is https)."""
        return self._secure

    def token(self, request: Request) -> str | None:
        value = request.cookies.get(COOKIE)
        # ASCII only: it becomes an Authorization header (anything else was a UnicodeEncodeError, a 500)
        return value if value and value.startswith("bss_") and len(value) < 200 and value.isascii() else None

    def csrf_for(self, token: str) -> str:
        digest = hashlib.sha256(token.encode()).digest()
        return hmac.new(self._key, b"bastion-ui-csrf|" + digest, hashlib.sha256).hexdigest()

    def same_origin(self, request: Request) -> bool:
        """Whether a POST comes from our own pages, when the browser says where it comes from."""
        origin = request.headers.get("origin")
        return origin is None or origin == self._origin or urlsplit(origin).hostname in _LOCAL

    def form_ok(self, request: Request, token: str, form: Any) -> bool:
        """A POST is ours: same Origin (when the browser says one) and the session's CSRF token."""
        if not self.same_origin(request):
            return False
        sent = form.get("csrf") if form is not None else None
        return isinstance(sent, str) and hmac.compare_digest(sent.encode(), self.csrf_for(token).encode())

    def sign_in(self, response: Response, token: str, max_age: int) -> None:
        response.set_cookie(
            COOKIE, token, max_age=max_age, path=PATH, secure=self._secure, httponly=True, samesite="strict"
        )

    def forget_provider(self, response: Response) -> None:
        """This browser's next sign-out is Bastion's only (a password sign-in after a provider's)."""
        response.delete_cookie(PROVIDER_COOKIE, path=PATH, secure=self._secure, httponly=True, samesite="strict")

    def sign_out(self, response: Response) -> None:
        response.delete_cookie(COOKIE, path=PATH, secure=self._secure, httponly=True, samesite="strict")


_LOCAL = {"localhost", "127.0.0.1", "::1"}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
