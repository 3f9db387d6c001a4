"""Revoked access tokens (by `jti`), remembered until they would have expired anyway: in this
process, and, with several replicas, in the shared revoked-ids list (Redis) so every replica refuses
them at once. If the shared list cannot be read or written, ServiceUnavailable: closed, not open."""

from __future__ import annotations

import time
from collections.abc import Callable

from bastion.core.ports import Revocations

_LIMIT = 100_000


def jti_revocation(jti: str) -> str:
    """The shared revocation id of an access token."""
    return f"jti:{jti}"


def family_revocation(family: str) -> str:
    """The revocation id that kills every access token of one token family (their `sid` claim)."""
    return f"sid:{family}"


class RevokedTokens:
    def __init__(self, shared: Revocations | None = None, clock: Callable[[], float] = time.time) -> None:
        self._shared = shared
        self._clock = clock
        self._until: dict[str, float] = {}

    async def add(self, jti: str, expires_at: float) -> None:
        now = self._clock()
        if len(self._until) >= _LIMIT:
            self._until = {k: v for k, v in self._until.items() if v > now}
        self._until[jti] = expires_at
        if self._shared is not None:
            # Kept a little past expiry: replicas' clocks may differ by a few seconds.
            await self._shared.revoke(jti_revocation(jti), max(0.0, expires_at - now) + 60)

    async def has(self, *ids: object) -> bool:
        """Whether any of these ids (a token's `jti`, its family's revocation id) is revoked; ids
        that are missing or not strings are ignored. One round trip to the shared list."""
        names = [i for i in ids if isinstance(i, str)]
        if not names:
            return False
        now = self._clock()
        if any(self._until.get(name, 0.0) > now for name in names):
            return True
        return self._shared is not None and await self._shared.is_revoked(*(jti_revocation(n) for n in names))
