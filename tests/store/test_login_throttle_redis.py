"""The Redis login throttle against the real Redis: the in-process throttle's rules, counted
together by every replica, keyed by hashes only, and closed (503) when Redis is down."""

from __future__ import annotations

import anyio
import pytest
from redis.asyncio import Redis

from bastion.core.errors import ServiceUnavailable
from bastion.store.shared.client import make_redis
from bastion.store.shared.throttle import RedisLoginThrottle
from tests.replicas.cluster import free_port

pytestmark = pytest.mark.anyio


async def test_an_account_locks_from_the_guessing_address_only_and_the_lock_doubles_up_to_the_cap(
    redis: Redis, prefix: str
) -> None:
    throttle = RedisLoginThrottle(redis, prefix, max_failures=3, lockout=100, max_lockout=250)
    for _ in range(2):
        await throttle.failed("a@x.io", "10.0.0.1")
    assert await throttle.retry_after("a@x.io", "10.0.0.1") == 0
    await throttle.failed("a@x.io", "10.0.0.1")
    # Durations are Redis's own clock; the bounds leave room for a slow machine, not for a bug.
    assert 90 < await throttle.retry_after("a@x.io", "10.0.0.1") <= 100
    assert await throttle.retry_after("a@x.io", "10.0.0.2") == 0  # the owner, elsewhere, is not locked out
    assert await throttle.retry_after("b@x.io", "10.0.0.1") == 0  # the address is below its own limit
    await throttle.failed("a@x.io", "10.0.0.1")
    assert 190 < await throttle.retry_after("a@x.io", "10.0.0.1") <= 200
    await throttle.failed("a@x.io", "10.0.0.1")
    assert 240 < await throttle.retry_after("a@x.io", "10.0.0.1") <= 250  # capped


async def test_replicas_count_together_and_a_success_clears_the_pair(redis: Redis, prefix: str) -> None:
    replicas = [RedisLoginThrottle(redis, prefix, max_failures=3, lockout=60) for _ in range(3)]
    for replica in replicas[:2]:
        await replica.failed("a@x.io", "10.0.0.1")
    await replicas[2].succeeded("a@x.io", "10.0.0.1")
    for replica in replicas:
        await replica.failed("a@x.io", "10.0.0.1")
    assert all([await r.retry_after("a@x.io", "10.0.0.1") > 0 for r in replicas])


async def test_guessing_from_many_addresses_locks_the_account_briefly_and_the_count_restarts(
    redis: Redis, prefix: str
) -> None:
    throttle = RedisLoginThrottle(redis, prefix, max_account_failures=4, account_lockout=60)
    for i in range(3):
        await throttle.failed("a@x.io", f"10.0.0.{i}")
    assert await throttle.retry_after("a@x.io", "10.9.9.9") == 0
    await throttle.failed("a@x.io", "10.0.0.3")
    assert 50 < await throttle.retry_after("a@x.io", "10.9.9.9") <= 60  # short, and from everywhere
    [key] = [k async for k in redis.scan_iter(match=f"{prefix}:login:account:*")]
    assert int(await redis.hget(key, "failures")) == 0  # the count restarted: locking again takes as many


async def test_an_address_locks_on_its_own_for_every_account(redis: Redis, prefix: str) -> None:
    throttle = RedisLoginThrottle(redis, prefix, max_failures=5, max_ip_failures=3, lockout=30)
    for account in ("a@x.io", "b@x.io", "c@x.io"):
        await throttle.failed(account, "10.0.0.1")
    assert await throttle.retry_after("d@x.io", "10.0.0.1") > 0
    assert await throttle.retry_after("d@x.io", "10.0.0.9") == 0
    await throttle.succeeded("a@x.io", "10.0.0.1")  # a success clears the account, not the address
    assert await throttle.retry_after("a@x.io", "10.0.0.1") > 0


async def test_keys_hold_neither_the_email_nor_the_address_and_expire(redis: Redis, prefix: str) -> None:
    throttle = RedisLoginThrottle(redis, prefix, max_failures=5, keep=600)
    await throttle.failed("secret-person@x.io", "10.9.8.7")
    keys = [k.decode() async for k in redis.scan_iter(match=f"{prefix}:*")]
    assert len(keys) == 3  # the account and address pair, the account, the address
    assert not any("secret-person" in k or "10.9.8.7" in k for k in keys)
    assert all(0 < ttl <= 600_000 for ttl in [await redis.pttl(k) for k in keys])


async def test_with_redis_down_login_checks_fail_closed() -> None:
    gone = make_redis(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    throttle = RedisLoginThrottle(gone, "p")
    try:
        with anyio.fail_after(10):
            with pytest.raises(ServiceUnavailable):
                await throttle.retry_after("a@x.io", "10.0.0.1")
            with pytest.raises(ServiceUnavailable):
                await throttle.failed("a@x.io", "10.0.0.1")
            with pytest.raises(ServiceUnavailable):
                await throttle.succeeded("a@x.io", "10.0.0.1")
    finally:
        await gone.aclose()
