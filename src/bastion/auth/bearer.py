"""One bearer-token check for the edge: JWTs go to the verifier of the issuer they name (an external
identity provider, or Bastion's own authorization server), everything else (the admin token, API
tokens, sessions) to Bastion's token verifier."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import jwt

from bastion.auth.oidc import looks_like_jwt
from bastion.auth.tokens import TokenVerifier, UnrecordedTokens, bearer_token
from bastion.core.errors import Unauthenticated
from bastion.pipeline.context import Principal


class JwtVerifier(Protocol):
    async def verify(self, token: str) -> Principal: ...


def unverified_issuer(token: str) -> str:
    """The `iss` a JWT claims, read only to pick its verifier (which then checks everything)."""
    try:
        issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        raise Unauthenticated("invalid token: not a well-formed JWT") from None
    if not isinstance(issuer, str):
        raise Unauthenticated("invalid token: it names no issuer")
    return issuer


class BearerVerifier:
    def __init__(self, own: TokenVerifier | UnrecordedTokens, issuers: Mapping[str, JwtVerifier] | None = None) -> None:
        self.own = own
        self.issuers = dict(issuers or {})

    async def verify(self, authorization: str | None, client_ip: str | None) -> Principal:
        if self.issuers:
            token = bearer_token(authorization)
            if looks_like_jwt(token):
                verifier = self.issuers.get(unverified_issuer(token))
                if verifier is None:
                    raise Unauthenticated("invalid token: issued by another issuer")
                return await verifier.verify(token)
        return await self.own.verify(authorization, client_ip)
