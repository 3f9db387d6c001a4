"""Checking Bastion's own access tokens on the MCP endpoints: the OIDC verifier does the JWT work
(signature from Bastion's JWKS read straight from the database, issuer, audience = one virtual
server, expiry, the `mcp` scope); then the user must still exist and be active, and their current
role and teams (not ones frozen into the token) are what policy sees.

An open stream bound to an OAuth grant is re-checked by the grant instead (`verify_grant`): the
access token it was last used with may have expired while the grant, which the client refreshes
(perhaps at another replica), lives on."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import jwt

from bastion.auth.oauth.keys import SigningKeys
from bastion.auth.oauth.revoked import RevokedTokens, family_revocation
from bastion.auth.oidc import OidcConfig, OidcVerifier, looks_like_jwt
from bastion.auth.tokens import bearer_token, user_revocation
from bastion.core.errors import BastionError, ServiceUnavailable, Unauthenticated
from bastion.core.identity import User
from bastion.core.ports import IdentityRepo, Revocations
from bastion.pipeline.context import Principal

_USER_CACHE_TTL = 5.0
_USER_CACHE_LIMIT = 10_000

GrantAlive = Callable[[str, str, datetime], Awaitable[bool]]
"""Whether the grant of (refresh family, client) still lives at a moment (`OAuthRepo.grant_alive`)."""


class OwnTokenVerifier:
    def __init__(
        self,
        issuer: str,
        base_url: str,
        keys: SigningKeys,
        identity: IdentityRepo,
        revoked: RevokedTokens,
        shared: Revocations | None = None,
        grant_alive: GrantAlive | None = None,
    ) -> None:
        """`grant_alive` reads the grants' state in the database; without it `verify_grant` is `verify`."""
        self.issuer = issuer
        config = OidcConfig(
            issuer=issuer,
            jwks_url=f"{issuer}/oauth/jwks",
            audience=None,
            required_scopes=("mcp",),
            user_claim="sub",
            teams_claim="",
            role_claim="",
        )

        async def own_jwks(_url: str) -> dict[str, Any]:
            return await keys.jwks()

        # An unknown key id reloads at once: it is one small query (as for any unknown opaque token),
        # and another replica may just have rotated.
        self._jwt = OidcVerifier(config, base_url, own_jwks, refetch_after=0.0)
        self._identity = identity
        self._revoked = revoked
        self._shared = shared
        self._grant_alive = grant_alive
        self._users: dict[str, tuple[float, User | None]] = {}

    async def verify(self, token: str) -> Principal:
        checked = await self._jwt.verify(token)
        # The signature, issuer and expiry were verified just above; this only reads the claims.
        return await self._principal(checked, jwt.decode(token, options={"verify_signature": False}))

    async def verify_grant(self, authorization: str | None) -> Principal:
        """Whom the grant behind one of our access tokens, expired or not, still proves: the token's
        signature, issuer, audience and scope hold, its grant is neither revoked nor run out (in the
        database, on whichever replica that happened), its client is still registered and its user
        active. Only for re-checking a stream that grant opened: a request's token is `verify`'d,
        its expiry included."""
        token = bearer_token(authorization)
        if self._grant_alive is None or not looks_like_jwt(token):
            return await self.verify(token)
        checked = await self._jwt.verify_ignoring_expiry(token)
        claims = jwt.decode(token, options={"verify_signature": False})  # verified just above
        family, client = claims.get("sid"), claims.get("client_id")
        if not isinstance(family, str) or not family or not isinstance(client, str):
            return await self.verify(token)  # no grant to judge by: the token alone
        principal = await self._principal(checked, claims)
        if not await self._grant_alive(family, client, datetime.now(UTC)):
            raise Unauthenticated("invalid token: its grant was revoked or has run out")
        return principal

    async def _principal(self, checked: Principal, claims: dict[str, Any]) -> Principal:
        """The principal of verified `claims` (`checked`, as the JWT verifier read them), unless the
        token or its family was revoked or its user is deactivated or gone."""
        sid = claims.get("sid")
        if await self._revoked.has(claims.get("jti"), family_revocation(sid) if isinstance(sid, str) else None):
            raise Unauthenticated("invalid token: revoked")
        user = await self._user(str(claims["sub"]))
        if user is None:
            raise Unauthenticated("invalid token: its user is deactivated or gone")
        return Principal(
            id=f"user:{user.id}",
            kind="user",
            grants=checked.grants,
            user=user.id,
            teams=frozenset(user.teams),
            role=user.role,
            oauth_grant=_grant_of(claims, self.issuer),
            expires=float(claims["exp"]) if isinstance(claims.get("exp"), int | float) else None,
        )

    async def claims(self, token: str) -> dict[str, object] | None:
        """The claims of a token of ours, expired or not (for revocation: an expired access token
        still names its grant, which revoking it ends), else None. Its signature, issuer, audience
        and scope are checked as for `verify`; only its expiry is looked past."""
        try:
            await self._jwt.verify_ignoring_expiry(token)
        except BastionError:
            return None
        return dict(jwt.decode(token, options={"verify_signature": False}))

    async def _user(self, user_id: str) -> User | None:
        now = time.monotonic()
        cached = self._users.get(user_id)
        if cached is not None and now - cached[0] < _USER_CACHE_TTL and not await self._changed_elsewhere(user_id):
            return cached[1]
        user = await self._identity.get_user(user_id)
        found = user if user is not None and user.active else None
        if len(self._users) >= _USER_CACHE_LIMIT:
            self._users.clear()
        self._users[user_id] = (now, found)
        return found

    async def _changed_elsewhere(self, user_id: str) -> bool:
        """Whether another replica changed this user's access (True too when that cannot be told)."""
        if self._shared is None:
            return False
        try:
            return await self._shared.is_revoked(user_revocation(user_id))
        except ServiceUnavailable:
            return True  # read the store instead of trusting the cache

    def forget_user(self, user_id: str) -> None:
        self._users.pop(user_id, None)


def grant_revocation(oauth_grant: str) -> str | None:
    """The revocation id (`family_revocation`) announced when the grant `oauth_grant` (as
    `Principal.oauth_grant` names it) is revoked; None if it names no family."""
    try:
        parts = json.loads(oauth_grant)
    except ValueError:
        return None
    family = parts[2] if isinstance(parts, list) and len(parts) == 5 else None
    return family_revocation(family) if isinstance(family, str) and family else None


def _grant_of(claims: dict[str, Any], issuer: str) -> str | None:
    """The grant a verified access token was issued under: its refresh family (`sid`, which every
    refresh keeps) with the client, user and resource it was issued to. Only sessions compare it,
    through a keyed hash; JSON keeps a client id from posing as another field."""
    family = claims.get("sid")
    if not isinstance(family, str) or not family:
        return None
    parts = [issuer, claims.get("client_id"), family, claims.get("sub"), claims.get("aud")]
    return json.dumps(parts, separators=(",", ":"))
