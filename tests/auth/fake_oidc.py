"""A small but real OpenID Connect provider for tests: discovery, JWKS (ES256 and RS256 keys from
`cryptography`), an /authorize endpoint that approves the configured person (at once, redirecting
back with code and state, or on a page where the person clicks "Approve"), a token endpoint that checks the client's secret, the redirect URI
and the PKCE verifier, uses each code once, and issues an ID token with the flow's nonce, and an
end_session_endpoint that records who was sent to sign out."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "bastion-ui"
CLIENT_SECRET = "s3cr3t-of-the-bastion-client"


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str


@dataclass
class FakeProvider:
    url: str = ""
    kid: str = "ec1"
    claims: dict[str, Any] = field(default_factory=lambda: {"email": "ada@example.com", "email_verified": True})
    """Claims of the person /authorize approves (besides iss, sub, aud, exp, iat, nonce)."""
    id_token_overrides: dict[str, Any] = field(default_factory=dict)
    """Claims to change in the next ID tokens (None removes one): for forgeries."""
    sign_with: Any = None
    """A key the provider does not publish, to sign ID tokens with (a forgery)."""
    deny: str | None = None
    """An OAuth error /authorize answers with instead of a code."""
    client_secret: str | None = CLIENT_SECRET
    declare_algorithms: bool = True
    """Whether the JWKS says each key's "alg" (providers may leave it out)."""
    interactive: bool = False
    """Approve on a page of the provider's own (the person clicks), as real providers do, rather than
    by redirecting at once: the way back then begins at the provider's site."""
    end_session: bool = True
    """Whether discovery offers an end_session_endpoint (RP-initiated logout)."""
    logouts: list[dict[str, str]] = field(default_factory=list)
    keys: dict[str, Any] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.keys = {"ec1": ec.generate_private_key(ec.SECP256R1()), "rsa1": rsa.generate_private_key(65537, 2048)}

    def jwks(self) -> dict[str, Any]:
        entries = []
        for kid, key in self.keys.items():
            is_ec = isinstance(key, ec.EllipticCurvePrivateKey)
            algorithm = jwt.algorithms.ECAlgorithm if is_ec else jwt.algorithms.RSAAlgorithm
            entry = algorithm.to_jwk(key.public_key(), as_dict=True)
            entries.append({**entry, "kid": kid, "use": "sig"} | ({"alg": "ES256" if is_ec else "RS256"} if self.declare_algorithms else {}))
        return {"keys": entries}

    def id_token(self, grant: Grant) -> str:
        now = int(time.time())
        claims = {"iss": self.url, "sub": "idp-user-1", "aud": grant.client_id, "iat": now, "exp": now + 300, "nonce": grant.nonce}
        claims |= self.claims | self.id_token_overrides
        claims = {k: v for k, v in claims.items() if v is not None}
        key = self.sign_with or self.keys[self.kid]
        if isinstance(key, bytes):  # an HMAC forgery (e.g. keyed with a published public key)
            return jwt.encode(claims, key, algorithm="HS256", headers={"kid": self.kid})
        algorithm = "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS256"
        return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": self.kid})

    def app(self) -> Starlette:
        async def discovery(_: Request) -> JSONResponse:
            return JSONResponse({
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "jwks_uri": f"{self.url}/jwks",
                "code_challenge_methods_supported": ["S256"],
            } | ({"end_session_endpoint": f"{self.url}/logout"} if self.end_session else {}))

        async def logout(request: Request) -> Response:
            query = dict(request.query_params)
            self.logouts.append(query)
            back = query.get("post_logout_redirect_uri")
            return RedirectResponse(back, status_code=302) if back else HTMLResponse("<p>Signed out</p>")

        async def keys(_: Request) -> JSONResponse:
            return JSONResponse(self.jwks())

        async def authorize(request: Request) -> Response:
            q = request.query_params
            if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256" or "openid" not in q.get("scope", ""):
                return JSONResponse({"error": "invalid_request"}, status_code=400)
            back: dict[str, str] = {"state": q["state"]}
            if self.deny is not None:
                back["error"] = self.deny
            else:
                code = secrets.token_urlsafe(16)
                self.grants[code] = Grant(q["client_id"], q["redirect_uri"], q["code_challenge"], q["nonce"])
                back["code"] = code
            back_url = f"{q['redirect_uri']}?{urlencode(back)}"
            if self.interactive:
                page = f'<!doctype html><title>Example ID</title><h1>Example ID</h1><a href="{html.escape(back_url)}">Approve</a>'
                return HTMLResponse(page)
            return RedirectResponse(back_url, status_code=302)

        async def token(request: Request) -> Response:
            form = {k: str(v) for k, v in (await request.form()).items()}
            self.token_requests.append(form | {"authorization": request.headers.get("authorization", "")})
            client_id = form.get("client_id")
            auth = request.headers.get("authorization", "")
            if auth.startswith("Basic "):
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            else:
                secret = form.get("client_secret", "")
            if client_id != CLIENT_ID or (self.client_secret is not None and not hmac.compare_digest(secret, self.client_secret)):
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            grant = self.grants.pop(form.get("code", ""), None)
            if grant is None or grant.redirect_uri != form.get("redirect_uri") or grant.client_id != client_id:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
            if base64.urlsafe_b64encode(digest).decode().rstrip("=") != grant.challenge:
                return JSONResponse({"error": "invalid_grant", "error_description": "PKCE verifier"}, status_code=400)
            return JSONResponse({"access_token": "at-" + secrets.token_urlsafe(8), "token_type": "Bearer", "id_token": self.id_token(grant)})

        return Starlette(routes=[
            Route("/.well-known/openid-configuration", discovery),
            Route("/jwks", keys),
            Route("/authorize", authorize),
            Route("/token", token, methods=["POST"]),
            Route("/logout", logout),
        ])
