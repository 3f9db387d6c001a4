"""Rate-limit counters and revoked token ids in Redis, exact across replicas."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from bastion.store.shared.client import REDIS_ERRORS, unavailable

# Fixed windows on Redis's clock (so replicas' clocks do not matter). All counters are checked
# first and counted only if every one has room, in one atomic script: a refused call costs nothing.
# Keys are derived in the script from the window number, so this assumes one Redis, not a cluster.
_HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local slots = {}
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i - 1])
  local window = tonumber(ARGV[2 * i])
  local slot = math.floor(now / window)
  slots[i] = key .. ':' .. slot
  local count = tonumber(redis.call('GET', slots[i]) or '0')
  if count >= limit then
    return {i - 1, math.ceil((slot + 1) * window - now)}
  end
end
for i, key in ipairs(slots) do
  if redis.call('INCR', key) == 1 then
    redis.call('EXPIRE', key, tonumber(ARGV[2 * i]) + 1)
  end
end
return false
"""


class RedisRateLimiter:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._prefix = f"{prefix}:rl:"
        self._script = redis.register_script(_HIT)

    async def hit(self, counters: Sequence[tuple[str, int, int]]) -> tuple[int, int] | None:
        keys = [self._prefix + key for key, _, _ in counters]
        args = [n for _, limit, window in counters for n in (limit, window)]
        try:
            refused = await self._script(keys=keys, args=args)
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from None
        if not refused:
            return None
        return int(refused[0]), max(1, int(refused[1]))


class RedisRevocations:
    """One key per revoked id, expiring once no replica can still hold it in a cache."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:revoked:"

    async def revoke(self, token_id: str, ttl: float) -> None:
        try:
            await self._redis.set(self._prefix + token_id, b"1", px=max(1, int(ttl * 1000)))
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from None

    async def is_revoked(self, *token_ids: str) -> bool:
        if not token_ids:
            return False
        try:
            return bool(await self._redis.exists(*(self._prefix + token_id for token_id in token_ids)))
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from None
