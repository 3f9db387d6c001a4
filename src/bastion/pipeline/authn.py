"""Authenticate: turn the credential the edge parsed into a principal, and hold it to its grants.

This is the one place that decides who calls: every entry point (the fast path, the SDK's
handlers, subscriptions and listen streams) reaches it through the pipeline, and whatever
principal a caller put in the context is replaced by the one verified here. The HTTP edge asks the
same `Authenticator` early, to answer 401/403 with the headers OAuth clients need; the request's
credential remembers the answer, so a request is verified once.
"""

from __future__ import annotations

from typing import Protocol

from bastion.core.errors import Unauthenticated
from bastion.core.grants import authorize_server
from bastion.core.identity import authorize_mcp
from bastion.pipeline.base import Next, Result, Stage
from bastion.pipeline.context import CallContext, Credential, Principal

ANONYMOUS = Principal(id="local", kind="anonymous")
"""Anyone on a loopback-only `bastion wrap` started without a token."""


class Verifier(Protocol):
    """Checks a bearer token (see `bastion.auth.bearer.BearerVerifier`); raises Unauthenticated or Forbidden."""

    async def verify(self, authorization: str | None, client_ip: str | None) -> Principal: ...


class GrantVerifier(Protocol):
    """Checks the OAuth grant behind a bearer access token, whether or not the token has expired (see
    `bastion.auth.oauth.verify.OwnTokenVerifier.verify_grant`); raises Unauthenticated."""

    async def verify_grant(self, authorization: str | None) -> Principal: ...


class Authenticator:
    """Verifies credentials with `verifier` (None: everyone is anonymous), once per credential.
    `grants` is only for the authenticator that re-checks open streams (see `admit_grant`)."""

    def __init__(self, verifier: Verifier | None, grants: GrantVerifier | None = None) -> None:
        self._verifier = verifier
        self._grants = grants

    async def principal(self, credential: Credential) -> Principal:
        """Who presented `credential`; raises Unauthenticated (or Forbidden, e.g. a token used from
        outside its networks)."""
        verified = credential.verified
        if verified is not None and verified[0] is self:
            return verified[1]
        if self._verifier is None:
            principal = ANONYMOUS
        else:
            principal = await self._verifier.verify(credential.authorization, credential.client_ip)
        credential.verified = (self, principal)
        return principal

    async def admit(self, credential: Credential, server: str) -> Principal:
        """The principal, if it may use virtual server `server` at all: a token's grants name it and
        carry `mcp`, a user's role is not viewer. Raises Forbidden otherwise."""
        principal = await self.principal(credential)
        _hold_to(principal, server)
        return principal

    async def admit_grant(self, credential: Credential, server: str) -> Principal:
        """For re-checking an open stream bound to an OAuth grant, never for a request: as `admit`,
        but judged by the grant behind `credential`'s access token, which outlives the token (its
        expiry is not checked; its grant, user and rights are). Without `grants`, it is `admit`.
        Nothing is remembered on `credential`."""
        if self._grants is None:
            return await self.admit(credential, server)
        principal = await self._grants.verify_grant(credential.authorization)
        _hold_to(principal, server)
        return principal


def _hold_to(principal: Principal, server: str) -> None:
    """Raise Forbidden unless `principal` may use virtual server `server` at all."""
    if principal.grants is not None:
        authorize_server(principal.grants, server)
    if principal.role is not None:
        authorize_mcp(principal.role)


def authenticate_stage(authenticator: Authenticator) -> Stage:
    async def authenticate(ctx: CallContext, call_next: Next) -> Result:
        if ctx.credential is None:
            ctx.principal = None
            raise Unauthenticated("a bearer token is required")
        ctx.principal = await authenticator.admit(ctx.credential, ctx.server)
        return await call_next(ctx)

    return authenticate
