"""Login throttling in Redis, so failures count together on every replica. The same rules as
`auth.throttle.MemoryLoginThrottle` (read its docstring for the design): per account and address,
per address, and a high, short account-wide limit, so a lockout never locks the owner out.

Each check or count is one Lua script on Redis's clock (replicas' clocks do not matter). Keys hold
a hash of the email or address, never the thing itself. Redis unreachable: ServiceUnavailable, so
login fails closed (503) rather than letting guesses through uncounted.
"""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis

from bastion.core.login_limits import login_rules
from bastion.store.shared.client import REDIS_ERRORS, unavailable

# KEYS: the counters; ARGV: none. Milliseconds until the latest lock among them ends (0: none).
_RETRY_AFTER = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
for _, key in ipairs(KEYS) do
  local locked = tonumber(redis.call('HGET', key, 'until') or '0')
  if locked - now > wait then wait = locked - now end
end
return wait
"""
# KEYS: the counters; ARGV: five values per counter: allowed failures, first lockout ms, longest
# lockout ms, how long an idle count is kept ms, and 1 if the count starts again once it locks.
_FAILED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i, key in ipairs(KEYS) do
  local at = (i - 1) * 5
  local limit, first, longest = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  local keep, restart = tonumber(ARGV[at + 4]), ARGV[at + 5] == '1'
  local over = redis.call('HINCRBY', key, 'failures', 1) - limit
  local locked = tonumber(redis.call('HGET', key, 'until') or '0')
  if over >= 0 then
    locked = now + math.min(first * 2 ^ math.min(over, 20), longest)
    redis.call('HSET', key, 'until', string.format('%d', locked))
    if restart then redis.call('HSET', key, 'failures', 0) end
  end
  redis.call('PEXPIRE', key, math.max(locked - now, keep))
end
return 1
"""

def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class RedisLoginThrottle:
    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        max_failures: int = 5,
        max_ip_failures: int = 50,
        max_account_failures: int = 100,
        lockout: float = 30.0,
        max_lockout: float = 900.0,
        account_lockout: float = 60.0,
        account_window: float = 600.0,
        keep: float = 86400.0,
    ) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:login:"
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
        self._retry_after = redis.register_script(_RETRY_AFTER)
        self._failed = redis.register_script(_FAILED)

    def _pair(self, account: str, ip: str | None) -> str:
        return f"{self._prefix}pair:{_digest(account + chr(0) + (ip or ''))}"

    def _keys(self, account: str, ip: str | None) -> list[tuple[str, str]]:
        keys = [("pair", self._pair(account, ip)), ("account", f"{self._prefix}account:{_digest(account)}")]
        return keys + ([("ip", f"{self._prefix}ip:{_digest(ip)}")] if ip else [])

    async def retry_after(self, account: str, ip: str | None) -> float:
        keys = [key for _, key in self._keys(account, ip)]
        try:
            wait_ms = await self._retry_after(keys=keys, args=[])
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from None
        return max(0, int(wait_ms)) / 1000

    async def failed(self, account: str, ip: str | None) -> None:
        counters = self._keys(account, ip)
        args: list[int] = []
        for kind, _ in counters:
            rule = self._rules[kind]
            ms = (int(rule.first * 1000), int(rule.longest * 1000), int(rule.keep * 1000))
            args += [rule.limit, *ms, int(rule.restart)]
        try:
            await self._failed(keys=[key for _, key in counters], args=args)
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from None

    async def succeeded(self, account: str, ip: str | None) -> None:
        try:
            await self._redis.delete(self._pair(account, ip))
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from None
