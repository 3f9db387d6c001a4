"""In-process implementations of the shared-state ports, for one replica without Redis."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import anyio

from bastion.core.ports import ChangeHandler, RevokeHandler, RootsHandler


class LocalChangeFeed:
    """One replica: there is nobody else to tell."""

    async def publish_change(self) -> None:
        return None

    async def publish_revocation(self, token_id: str) -> None:
        return None

    async def publish_roots(self, caller: str) -> None:
        return None

    async def run(self, on_change: ChangeHandler, on_revoke: RevokeHandler, on_roots: RootsHandler | None = None) -> None:
        await anyio.sleep_forever()


class MemoryRevocations:
    """Revoked token ids with an expiry each, in this process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until: dict[str, float] = {}

    async def revoke(self, token_id: str, ttl: float) -> None:
        now = self._clock()
        self._until = {k: v for k, v in self._until.items() if v > now}
        self._until[token_id] = now + ttl

    async def is_revoked(self, *token_ids: str) -> bool:
        now = self._clock()
        return any(self._until.get(token_id, now) > now for token_id in token_ids)


class MemoryRateLimiter:
    """Fixed-window counters in this process (exact for one replica)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._counts: dict[tuple[str, int], int] = {}

    async def hit(self, counters: Sequence[tuple[str, int, int]]) -> tuple[int, int] | None:
        now = self._clock()
        keys = [(key, int(now // window)) for key, _, window in counters]
        for index, ((key, limit, window), slot) in enumerate(zip(counters, keys, strict=True)):
            if self._counts.get(slot, 0) >= limit:
                return index, max(1, math.ceil((slot[1] + 1) * window - now))
        for slot in keys:
            self._counts[slot] = self._counts.get(slot, 0) + 1
        self._expire(now, counters)
        return None

    def _expire(self, now: float, counters: Sequence[tuple[str, int, int]]) -> None:
        # Old windows are dropped now and then, so the dict stays as small as the live windows.
        if len(self._counts) > 10_000:
            windows = {key: window for key, _, window in counters}
            self._counts = {
                (k, s): c for (k, s), c in self._counts.items() if s >= int(now // windows.get(k, 86400))
            }


class AlwaysLeader:
    """One replica leads itself."""

    def is_leader(self) -> bool:
        return True

    async def run(self) -> None:
        await anyio.sleep_forever()
