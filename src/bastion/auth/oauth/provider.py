"""Bastion's authorization server behind the SDK's OAuth endpoints (`OAuthAuthorizationServerProvider`).

Authorization code with PKCE (the SDK checks S256), bound to the client, redirect URI, resource
(one virtual server's MCP URL, RFC 8707) and the user who consented. Access tokens are short-lived
ES256 JWTs for that one resource; refresh tokens are opaque, stored hashed, rotated on every use,
and a used one presented again revokes its whole family (OAuth 2.1 / RFC 6819 reuse detection). A
used authorization code presented again likewise revokes everything it issued (RFC 6749 4.1.2):
the refresh family and, on every replica, the access tokens carrying that family (`sid`).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    OAuthAuthorizationServerProvider,
    RefreshToken,
    RegistrationError,
    TokenError,
    construct_redirect_uri,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from bastion.auth.oauth.clients import SCOPES, Clients
from bastion.auth.oauth.keys import SigningKeys
from bastion.auth.oauth.revoked import RevokedTokens, family_revocation
from bastion.core.oauth import AuthorizationGrant, OAuthRepo, PendingAuthorization, RefreshGrant, redirect_uri_problem

log = logging.getLogger("bastion.auth")

CONSENT_PATH = "/oauth/consent"
_USED_CODE_KEPT = timedelta(days=1)
"""How long a used authorization code is remembered, so that its replay revokes what it issued."""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


REQUESTED_RESOURCE: ContextVar[str | None] = ContextVar("bastion_requested_resource", default=None)
"""The RFC 8707 `resource` a token request names, set by the /token endpoint: the SDK's handler does
not pass it to the exchange."""


class BastionRefreshToken(RefreshToken):
    family: str


@dataclass(frozen=True)
class ServerConfig:
    issuer: str
    base_url: str
    code_ttl: float = 60.0
    consent_ttl: float = 600.0
    access_ttl: float = 600.0
    refresh_ttl: float = 30 * 86400.0
    client_unused_ttl: float = 86400.0
    client_idle_ttl: float = 90 * 86400.0
    pending_per_client: int = 1000
    """Pending requests kept per client: /authorize is anonymous, so one client_id must not grow the
    table without bound (the oldest go first; a user rarely has more than one open)."""


AccessVerifier = Callable[[str], Awaitable[dict[str, object] | None]]
"""The verified claims of one of Bastion's own access tokens, or None."""
ActiveUser = Callable[[str], Awaitable[bool]]
GrantRevoked = Callable[[str], Awaitable[None]]
"""Told a revoked grant's revocation id (`family_revocation`), to end what it holds open everywhere."""


class AuthorizationServer(OAuthAuthorizationServerProvider[AuthorizationCode, "BastionRefreshToken", AccessToken]):
    """The provider the SDK's OAuth handlers drive (the jwt-bearer grant stays unsupported)."""

    def __init__(
        self,
        config: ServerConfig,
        repo: OAuthRepo,
        clients: Clients,
        keys: SigningKeys,
        revoked: RevokedTokens,
        active_user: ActiveUser,
        access_claims: AccessVerifier,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        grant_revoked: GrantRevoked | None = None,
    ) -> None:
        self.config = config
        self._repo = repo
        self.clients = clients
        self.keys = keys
        self._revoked = revoked
        self._active_user = active_user
        self._access_claims = access_claims
        self._now = now
        self._grant_revoked = grant_revoked

    def _check_target(self, granted: str | None) -> None:
        """A token request may not name another virtual server than its grant's (RFC 8707 section 2).
        Compared by the server named, not as text: a client may spell the same resource differently
        at /authorize and at a refresh (a trailing slash, the metadata's form or its own), and the
        token issued is for the grant's resource whatever the request names."""
        asked = REQUESTED_RESOURCE.get()
        if asked is None or granted is None:
            return
        named = self.server_of(asked.rstrip("/"))
        if named is not None and named != self.server_of(granted):
            raise TokenError("invalid_target", f"this grant was not authorized for virtual server {named!r}")

    def server_of(self, resource: str) -> str | None:
        """The virtual server a resource indicator names, or None if it names none."""
        prefix = self.config.base_url.rstrip("/") + "/servers/"
        if not resource.startswith(prefix) or not resource.endswith("/mcp"):
            return None
        name = resource[len(prefix) : -len("/mcp")]
        return name if name and "/" not in name else None

    # -- clients ---------------------------------------------------------------------------------

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        return await self.clients.get(client_id)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        if not client_info.redirect_uris:
            raise RegistrationError("invalid_redirect_uri", "at least one redirect_uri is required")
        for uri in client_info.redirect_uris:
            problem = redirect_uri_problem(str(uri))
            if problem is not None:
                raise RegistrationError("invalid_redirect_uri", problem)
        await self.clients.register(client_info)

    # -- authorization ---------------------------------------------------------------------------

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        """Keep the request and send the user to the login and consent page."""
        if params.resource is None or self.server_of(params.resource) is None:
            raise AuthorizeError("invalid_target", "resource must be a virtual server's MCP URL (RFC 8707)")
        scopes = tuple(params.scopes or SCOPES)
        if any(s not in SCOPES for s in scopes):
            raise AuthorizeError("invalid_scope", f"supported scopes: {' '.join(SCOPES)}")
        now = self._now()
        await self._repo.purge(now)
        await self._repo.purge_clients(
            now - timedelta(seconds=self.config.client_unused_ttl), now - timedelta(seconds=self.config.client_idle_ttl)
        )
        pending = PendingAuthorization(
            id=secrets.token_urlsafe(24),
            client_id=client.client_id or "",
            redirect_uri=str(params.redirect_uri),
            redirect_uri_explicit=params.redirect_uri_provided_explicitly,
            code_challenge=params.code_challenge,
            state=params.state,
            scopes=scopes,
            resource=params.resource,
            expires_at=now + timedelta(seconds=self.config.consent_ttl),
        )
        await self._repo.save_pending(pending, self.config.pending_per_client)
        return f"{self.config.issuer}{CONSENT_PATH}?{urlencode({'request': pending.id})}"

    async def pending(self, pending_id: str) -> PendingAuthorization | None:
        found = await self._repo.get_pending(pending_id)
        return found if found is not None and found.expires_at > self._now() else None

    async def new_csrf(self, pending_id: str) -> str:
        token = secrets.token_urlsafe(24)
        await self._repo.set_pending_csrf(pending_id, digest(token))
        return token

    async def answer(self, pending: PendingAuthorization, user_id: str | None) -> str:
        """Where to send the browser once the user allowed (`user_id`) or denied (None) the request;
        raises LookupError if it was answered already."""
        if await self._repo.take_pending(pending.id) is None:
            raise LookupError("this authorization request was answered already")
        if user_id is None:
            return self.redirect(pending, error="access_denied")
        code = secrets.token_urlsafe(32)
        grant = AuthorizationGrant(
            code_hash=digest(code),
            client_id=pending.client_id,
            user_id=user_id,
            redirect_uri=pending.redirect_uri,
            redirect_uri_explicit=pending.redirect_uri_explicit,
            code_challenge=pending.code_challenge,
            resource=pending.resource,
            scopes=pending.scopes,
            expires_at=self._now() + timedelta(seconds=self.config.code_ttl),
        )
        await self._repo.save_code(grant)
        return self.redirect(pending, code=code)

    def redirect(self, pending: PendingAuthorization, **params: str) -> str:
        # RFC 9207: the response names its issuer, so a client talking to several cannot be mixed up.
        return construct_redirect_uri(pending.redirect_uri, **params, state=pending.state, iss=self.config.issuer)

    # -- tokens ----------------------------------------------------------------------------------

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCode | None:
        grant = await self._repo.get_code(digest(authorization_code))
        if grant is None or grant.client_id != client.client_id:
            return None
        if grant.family is not None:
            # Used already: whoever redeemed it first may be the thief. Revoke what it issued.
            log.warning("authorization code replayed by client %s: revoking what it issued", grant.client_id[:100])
            await self._revoke_family(grant.family)
            return None
        return AuthorizationCode(
            code=authorization_code,
            scopes=list(grant.scopes),
            expires_at=grant.expires_at.timestamp(),
            client_id=grant.client_id,
            code_challenge=grant.code_challenge,
            redirect_uri=grant.redirect_uri,  # type: ignore[arg-type]  # pydantic validates it
            redirect_uri_provided_explicitly=grant.redirect_uri_explicit,
            resource=grant.resource,
            subject=grant.user_id,
        )

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        self._check_target(authorization_code.resource)  # before the code is spent
        family = str(uuid.uuid4())
        grant = await self._repo.take_code(digest(authorization_code.code), family, self._now() + _USED_CODE_KEPT)
        if grant is None:
            raise TokenError("invalid_grant", "the authorization code was used already")
        if not await self._active_user(grant.user_id):
            raise TokenError("invalid_grant", "the user who authorized this is no longer active")
        return await self._issue(grant.client_id, grant.user_id, grant.resource, grant.scopes, family)

    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> BastionRefreshToken | None:
        grant = await self._repo.get_refresh(digest(refresh_token))
        if grant is None or grant.client_id != client.client_id or grant.family_revoked_at is not None:
            return None
        if grant.used_at is not None:
            await self._reused(grant)
            return None
        return BastionRefreshToken(
            token=refresh_token,
            client_id=grant.client_id,
            scopes=list(grant.scopes),
            expires_at=int(grant.expires_at.timestamp()),
            resource=grant.resource,
            subject=grant.user_id,
            family=grant.family,
        )

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: BastionRefreshToken, scopes: list[str]
    ) -> OAuthToken:
        self._check_target(refresh_token.resource)  # before the refresh token is spent
        token_hash = digest(refresh_token.token)
        if not await self._repo.use_refresh(token_hash, self._now()):
            grant = await self._repo.get_refresh(token_hash)
            if grant is not None:
                await self._reused(grant)
            raise TokenError("invalid_grant", "the refresh token was used already")
        user, resource = refresh_token.subject or "", refresh_token.resource or ""
        if not await self._active_user(user):
            await self._repo.revoke_family(refresh_token.family, self._now())
            raise TokenError("invalid_grant", "the user who authorized this is no longer active")
        return await self._issue(refresh_token.client_id, user, resource, tuple(scopes), refresh_token.family)

    async def _reused(self, grant: RefreshGrant) -> None:
        # A rotated refresh token came back: one of the two holders is a thief. Revoke them both.
        log.warning("refresh token reuse by client %s: revoking its token family", grant.client_id[:100])
        await self._revoke_family(grant.family)

    async def _revoke_family(self, family: str) -> None:
        """Revoke a token family: its refresh tokens (in the database) and its live access tokens;
        then the streams its grant holds open are re-checked (on every replica)."""
        now = self._now()
        await self._repo.revoke_family(family, now)
        try:
            await self._revoked.add(family_revocation(family), now.timestamp() + self.config.access_ttl)
        finally:  # the database says revoked already: the re-checks read it
            if self._grant_revoked is not None:
                await self._grant_revoked(family_revocation(family))

    async def _issue(
        self, client_id: str, user: str, resource: str, scopes: tuple[str, ...], family: str
    ) -> OAuthToken:
        now = self._now()
        issued = int(now.timestamp())
        claims = {
            "iss": self.config.issuer,
            "sub": user,
            "aud": resource,
            "client_id": client_id,
            "scope": " ".join(scopes),
            "jti": secrets.token_urlsafe(16),
            "sid": family,
            "iat": issued,
            "exp": issued + int(self.config.access_ttl),
        }
        access = await self.keys.sign(claims)
        await self._repo.touch_client(client_id, now)
        refresh = secrets.token_urlsafe(32)
        await self._repo.save_refresh(
            RefreshGrant(
                token_hash=digest(refresh),
                family=family,
                client_id=client_id,
                user_id=user,
                resource=resource,
                scopes=scopes,
                expires_at=now + timedelta(seconds=self.config.refresh_ttl),
            )
        )
        return OAuthToken(
            access_token=access, expires_in=int(self.config.access_ttl), scope=" ".join(scopes), refresh_token=refresh
        )

    # -- revocation ------------------------------------------------------------------------------

    async def load_access_token(self, token: str) -> AccessToken | None:
        claims = await self._access_claims(token)
        if claims is None:
            return None
        scope = claims.get("scope")
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id", "")),
            scopes=scope.split() if isinstance(scope, str) else [],
            expires_at=int(str(claims.get("exp", 0))),
            resource=str(claims.get("aud", "")),
            subject=str(claims.get("sub", "")),
            claims=dict(claims),
        )

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        """Revoke the grant the token belongs to: its refresh family and, at once on every replica, the
        access tokens issued from it (RFC 7009 2.1), which is what a 2025-11-25 session is bound to."""
        if isinstance(token, BastionRefreshToken):
            await self._revoke_family(token.family)
            return
        if isinstance(token, AccessToken) and token.claims is not None:
            jti, family = token.claims.get("jti"), token.claims.get("sid")
            # The family first: it is in the database, so it holds even if sharing the rest fails (503).
            if isinstance(family, str):
                await self._revoke_family(family)
            if isinstance(jti, str):
                await self._revoked.add(jti, float(token.expires_at or time.time()))
