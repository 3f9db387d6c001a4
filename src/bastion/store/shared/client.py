"""The Redis connection and the translation of its failures into Bastion's errors."""

from __future__ import annotations

import logging

import anyio
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from bastion.core.errors import ServiceUnavailable

log = logging.getLogger("bastion.redis")

# Whatever an unreachable, restarting or overloaded Redis raises.
REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError, TimeoutError)
# Short timeouts: a call that needs Redis answers 503 quickly rather than hanging while it is down.
_TIMEOUT = 2.0


def make_redis(url: str) -> Redis:
    """A pooled client; no retries of its own (callers fail fast and the feed reconnects)."""
    return Redis.from_url(
        url,
        socket_timeout=_TIMEOUT,
        socket_connect_timeout=_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=15,
    )


def unavailable(exc: BaseException) -> ServiceUnavailable:
    """The error a caller sees when Redis fails it; the cause's details stay in the log."""
    log.warning("Redis is unreachable: %s", type(exc).__name__)
    return ServiceUnavailable("shared state (Redis) is unreachable; retry shortly")


class RedisReadiness:
    """`/readyz`: Redis answers PING."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def problem(self) -> str | None:
        try:
            with anyio.fail_after(_TIMEOUT + 1):
                await self._redis.ping()
        except REDIS_ERRORS as exc:
            return f"redis unreachable ({type(exc).__name__})"
        return None
