"""A loopback OAuth provider for per-user upstreams: `/authorize` approves at once for the account named
in `login_as` (as if that person signed in), `/token` does authorization_code (PKCE S256 checked) and
refresh_token (rotated), and the gate in front of the real MCP upstream lets through only live access
tokens, telling the upstream whose account each one is (`x-account`)."""

from __future__ import annotations

import base64
import hashlib
import itertools
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from tests.vault.oauth_upstream import OAuthWorld, _json


@dataclass
class Code:
    account: str
    challenge: str
    redirect_uri: str


@dataclass
class UserOAuthProvider(OAuthWorld):
    codes: dict[str, Code] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # live refresh token -> account
    accounts: dict[str, str] = field(default_factory=dict)  # access token -> account

    def __post_init__(self) -> None:
        super().__post_init__()
        self._n = itertools.count(1)

    def revoke_access(self) -> None:
        """Every access token stops working (refresh tokens still do)."""
        self.live.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        if request.url.path == "/authorize":
            response = self._authorize(request)
        elif request.url.path == "/token":
            response = await self._token(request)
        else:
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            account = self.accounts.get(token, "")
            scope = {**scope, "headers": [*scope["headers"], (b"x-account", account.encode())]}
            response = await self._gate(Request(scope, receive))
        await response(scope, receive, send)

    def _authorize(self, request: Request) -> Response:
        q = request.query_params
        if q.get("client_id") != self.client_id or q.get("code_challenge_method") != "S256":
            return _json({"error": "invalid_request"}, 400)
        code = f"code-{next(self._n)}"
        self.codes[code] = Code(q["login_as"], q["code_challenge"], q["redirect_uri"])
        return RedirectResponse(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}", 302)

    async def _token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        self.token_requests.append(form)
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return _json({"error": "invalid_client"}, 401)
        if form.get("grant_type") == "authorization_code":
            grant = self.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
            if grant is None or grant.challenge != challenge or grant.redirect_uri != form.get("redirect_uri"):
                return _json({"error": "invalid_grant"}, 400)
            return self._issue(grant.account)
        if form.get("grant_type") == "refresh_token":
            account = self.refresh_tokens.pop(form.get("refresh_token", ""), None)  # rotated: single use
            if account is None:
                return _json({"error": "invalid_grant"}, 400)
            return self._issue(account)
        return _json({"error": "unsupported_grant_type"}, 400)

    def _issue(self, account: str) -> Response:
        n = next(self._n)
        access, refresh = f"at-{account}-{n}", f"rt-{account}-{n}"
        self.live.add(access)
        self.accounts[access] = account
        self.refresh_tokens[refresh] = account
        body: dict[str, object] = {"access_token": access, "token_type": "Bearer", "refresh_token": refresh}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return _json(body, 200)  # type: ignore[arg-type]
