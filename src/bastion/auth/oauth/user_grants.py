"""Ending a user's OAuth grants from outside the OAuth endpoints (a password change, a deactivation,
an admin's or the user's own request), the way /revoke ends one: the refresh family is revoked in
the database, its access tokens (their `sid`) join the revoked list every replica reads, and the
streams the grant holds open are re-checked on every replica."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from bastion.auth.oauth.provider import GrantRevoked
from bastion.auth.oauth.revoked import RevokedTokens, family_revocation
from bastion.core.oauth_grants import UserGrant, UserGrantStore


class OAuthUserGrants:
    """UserGrantsPort over the grant store; `access_ttl` is how long an access token lives, so how
    long its family's revocation must be remembered."""

    def __init__(
        self,
        store: UserGrantStore,
        revoked: RevokedTokens,
        access_ttl: float,
        grant_revoked: GrantRevoked | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._revoked = revoked
        self._access_ttl = access_ttl
        self._grant_revoked = grant_revoked
        self._now = now

    async def of_user(self, user_id: str) -> list[UserGrant]:
        return await self._store.user_grants(user_id, self._now())

    async def end(self, user_id: str, family: str | None = None) -> list[str]:
        now = self._now()
        ended = await self._store.revoke_user_grants(user_id, now, family)
        try:
            for one in ended:
                await self._revoked.add(family_revocation(one), now.timestamp() + self._access_ttl)
        finally:  # the database says revoked already: the re-checks read it
            if self._grant_revoked is not None:
                for one in ended:
                    await self._grant_revoked(family_revocation(one))
        return ended
