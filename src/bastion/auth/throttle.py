"""In-process login throttling: failures counted per account and per client address.

After `max_failures` in a row an account (or, after `max_ip_failures`, an address) is locked for
`lockout` seconds, doubling with every further failure up to `max_lockout`. A success on the
account clears its count. With Redis, `store.shared.throttle.RedisLoginThrottle` does the same for every replica.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

_LIMIT = 100_000


@dataclass(slots=True)
class _Count:
    failures: int = 0
    locked_until: float = 0.0


class MemoryLoginThrottle:
    def __init__(
        self,
        *,
        max_failures: int = 5,
        max_ip_failures: int = 50,
        lockout: float = 30.0,
        max_lockout: float = 900.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = {"account": max_failures, "ip": max_ip_failures}
        self._lockout = lockout
        self._max_lockout = max_lockout
        self._now = monotonic
        self._counts: dict[tuple[str, str], _Count] = {}

    def _keys(self, account: str, ip: str | None) -> list[tuple[str, str]]:
        return [("account", account)] + ([("ip", ip)] if ip else [])

    async def retry_after(self, account: str, ip: str | None) -> float:
        now = self._now()
        waits = [c.locked_until - now for k in self._keys(account, ip) if (c := self._counts.get(k)) is not None]
        return max([0.0, *waits])

    async def failed(self, account: str, ip: str | None) -> None:
        if len(self._counts) >= _LIMIT:
            self._forget_unlocked()
        now = self._now()
        for key in self._keys(account, ip):
            count = self._counts.setdefault(key, _Count())
            count.failures += 1
            over = count.failures - self._max[key[0]]
            if over >= 0:
                count.locked_until = now + min(self._lockout * 2**min(over, 20), self._max_lockout)

    async def succeeded(self, account: str, ip: str | None) -> None:
        self._counts.pop(("account", account), None)

    def _forget_unlocked(self) -> None:
        # Bounded memory under a spray of addresses: keep only what is locked right now.
        now = self._now()
        self._counts = {k: c for k, c in self._counts.items() if c.locked_until > now}
