"""Login throttling in Redis, so failures count together on every replica (same rules as
`auth.throttle.MemoryLoginThrottle`): per account and per client address, a lockout that doubles
with each further failure, the account's count cleared by a success.

Each check or count is one Lua script on Redis's clock (replicas' clocks do not matter). Keys hold
a hash of the email or address, never the thing itself. Redis unreachable: ServiceUnavailable, so
login fails closed (503) rather than letting guesses through uncounted.
"""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis

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
# KEYS: the counters; ARGV: first lockout ms, longest lockout ms, how long an unlocked count is
# kept ms, then each counter's allowed failures.
_FAILED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lockout, longest, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i, key in ipairs(KEYS) do
  local over = redis.call('HINCRBY', key, 'failures', 1) - tonumber(ARGV[3 + i])
  local locked = tonumber(redis.call('HGET', key, 'until') or '0')
  if over >= 0 then
    locked = now + math.min(lockout * 2 ^ math.min(over, 20), longest)
    redis.call('HSET', key, 'until', string.format('%d', locked))
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
        lockout: float = 30.0,
        max_lockout: float = 900.0,
        keep: float = 86400.0,
    ) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:login:"
        self._max = {"account": max_failures, "ip": max_ip_failures}
        self._ms = [int(lockout * 1000), int(max_lockout * 1000), int(keep * 1000)]
        self._retry_after = redis.register_script(_RETRY_AFTER)
        self._failed = redis.register_script(_FAILED)

    def _keys(self, account: str, ip: str | None) -> list[tuple[str, str]]:
        keys = [("account", f"{self._prefix}account:{_digest(account)}")]
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
        args = [*self._ms, *(self._max[kind] for kind, _ in counters)]
        try:
            await self._failed(keys=[key for _, key in counters], args=args)
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from None

    async def succeeded(self, account: str, ip: str | None) -> None:
        try:
            await self._redis.delete(self._keys(account, None)[0][1])
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from None
