"""One bearer-token check for the edge: JWTs from a trusted identity provider go to its verifier,
everything else (the admin token, API tokens) to Bastion's own."""

from __future__ import annotations

from bastion.auth.oidc import OidcVerifier, looks_like_jwt
from bastion.auth.tokens import TokenVerifier, bearer_token
from bastion.pipeline.context import Principal


class BearerVerifier:
    def __init__(self, own: TokenVerifier, oidc: OidcVerifier | None = None) -> None:
        self.own = own
        self.oidc = oidc

    async def verify(self, authorization: str | None, client_ip: str | None) -> Principal:
        if self.oidc is not None:
            token = bearer_token(authorization)
            if looks_like_jwt(token):
                return await self.oidc.verify(token)
        return await self.own.verify(authorization, client_ip)
