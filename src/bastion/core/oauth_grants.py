"""A user's OAuth grants as an admin (or the user) sees them: one per refresh-token family that still
lives, never a token. Ending one ends its refresh token and its access tokens, as /revoke does."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from bastion.core.values import Frozen


class UserGrant(Frozen):
    """One live grant of a user: the refresh family's id (what a revocation names) and its client."""

    id: str
    client_id: str
    client_name: str | None = None
    resource: str
    scopes: tuple[str, ...] = ()
    created_at: datetime | None = None
    """When the oldest refresh token still kept for it was issued: the grant's start for its first
    refresh-token lifetime (tokens are kept until they expire)."""
    last_used_at: datetime | None = None
    """When the client last refreshed it (None: never)."""
    expires_at: datetime
    """When its current refresh token expires, unless refreshed before."""


class UserGrantStore(Protocol):
    """The grants in the authorization server's database, by user."""

    async def user_grants(self, user_id: str, now: datetime) -> list[UserGrant]:
        """The user's grants that are neither revoked nor run out, newest first."""
        ...

    async def revoke_user_grants(self, user_id: str, at: datetime, family: str | None = None) -> list[str]:
        """Revoke the user's grants (or only `family`, when it is theirs), and drop the authorization
        codes issued to them and not yet exchanged; the families revoked now."""
        ...


class UserGrantsPort(Protocol):
    """What the users' control needs: list a user's grants and end them everywhere."""

    async def of_user(self, user_id: str) -> list[UserGrant]: ...

    async def end(self, user_id: str, family: str | None = None) -> list[str]:
        """End the user's grants (or one); the ids of those ended."""
        ...
