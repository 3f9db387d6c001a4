"""In-process login throttling, designed so that a lockout is never a denial of service.

Failures are counted in three ways (`store.shared.throttle.RedisLoginThrottle` does the same for
every replica, with Redis):

- per account *and* address: `max_failures` (5) wrong passwords for one account from one address
  lock that pair, for `lockout` seconds doubling with each further failure up to `max_lockout`. The
  guesser is stopped; the account's owner, signing in from anywhere else, is not. A success clears it.
- per address: `max_ip_failures` (50) failures from one address, whatever the accounts, lock the
  address (doubling the same way): one host spraying many accounts.
- per account, across all addresses: a high, short limit against guessing spread over many
  addresses: `max_account_failures` (100) failures with no pause longer than `account_window` lock
  the account for `account_lockout` (60) seconds, not doubling, and the count starts again. To keep an
  account locked an attacker needs that many fresh failures a minute, each from an address not yet
  locked: a botnet, not a script.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bastion.core.login_limits import login_rules

_LIMIT = 100_000


@dataclass(slots=True)
class _Count:
    failures: int = 0
    locked_until: float = 0.0
    last: float = 0.0


class MemoryLoginThrottle:
    def __init__(
        self,
        *,
        max_failures: int = 5,
        max_ip_failures: int = 50,
        max_account_failures: int = 100,
        lockout: float = 30.0,
        max_lockout: float = 900.0,
        account_lockout: float = 60.0,
        account_window: float = 600.0,
        keep: float = 86400.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rules = login_rules(
            max_failures=max_failures,
            max_ip_failures=max_ip_failures,
            max_account_failures=max_account_failures,
            lockout=lockout,
            max_lockout=max_lockout,
            account_lockout=account_lockout,
            account_window=account_window,
            keep=keep,
        )
        self._now = monotonic
        self._counts: dict[tuple[str, ...], _Count] = {}

    def _keys(self, account: str, ip: str | None) -> list[tuple[str, ...]]:
        return [("pair", account, ip or ""), ("account", account)] + ([("ip", ip)] if ip else [])

    async def retry_after(self, account: str, ip: str | None) -> float:
        now = self._now()
        waits = [c.locked_until - now for k in self._keys(account, ip) if (c := self._counts.get(k)) is not None]
        return max([0.0, *waits])

    async def failed(self, account: str, ip: str | None) -> None:
        if len(self._counts) >= _LIMIT:
            self._forget_unlocked()
        now = self._now()
        for key in self._keys(account, ip):
            rule = self._rules[key[0]]
            count = self._counts.setdefault(key, _Count(last=now))
            if now - count.last > rule.keep:
                count.failures = 0
            count.failures += 1
            count.last = now
            over = count.failures - rule.limit
            if over >= 0:
                count.locked_until = now + min(rule.first * 2 ** min(over, 20), rule.longest)
                if rule.restart:
                    count.failures = 0

    async def succeeded(self, account: str, ip: str | None) -> None:
        self._counts.pop(("pair", account, ip or ""), None)

    def _forget_unlocked(self) -> None:
        # Bounded memory under a spray of addresses: keep only what is locked right now.
        now = self._now()
        self._counts = {k: c for k, c in self._counts.items() if c.locked_until > now}
