"""Leader election with a Redis lease: SET NX PX to take it, a compare-and-set script to renew it.

The leader believes it leads only until `start of its last successful renewal + lease`, which is
never later than the lease's expiry in Redis, so two replicas never both believe it. If Redis
cannot be reached the leader steps down at once (nobody leads until Redis is back).
"""

from __future__ import annotations

import logging
import time

import anyio
from redis.asyncio import Redis

from bastion.store.shared.client import REDIS_ERRORS

log = logging.getLogger("bastion.redis")

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLeadership:
    def __init__(self, redis: Redis, prefix: str, replica: str, *, lease: float) -> None:
        self._redis = redis
        self._key = f"{prefix}:leader"
        self._replica = replica
        self._lease_ms = max(1, int(lease * 1000))
        self._lease = lease
        self._until = 0.0
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def is_leader(self) -> bool:
        return time.monotonic() < self._until

    async def run(self) -> None:
        try:
            while True:
                await self._attempt()
                await anyio.sleep(self._lease / 3)
        finally:
            # Hand the lease back on shutdown so another replica takes over at once.
            if self.is_leader():
                with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                    try:
                        await self._release(keys=[self._key], args=[self._replica])
                    except REDIS_ERRORS:
                        pass
            self._until = 0.0

    async def _attempt(self) -> None:
        started = time.monotonic()
        was_leader = self.is_leader()
        try:
            held = bool(await self._renew(keys=[self._key], args=[self._replica, self._lease_ms]))
            if not held:
                held = bool(await self._redis.set(self._key, self._replica, nx=True, px=self._lease_ms))
        except REDIS_ERRORS as exc:
            log.warning("leader lease: Redis unreachable (%s)", type(exc).__name__)
            held = False
        except Exception:
            log.exception("leader lease: unexpected failure")
            held = False
        self._until = started + self._lease if held else 0.0
        if held != was_leader:
            log.info("replica %s %s the leader", self._replica, "is now" if held else "is no longer")
