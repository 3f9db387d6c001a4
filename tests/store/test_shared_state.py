"""The shared-state adapters against the real Redis (and the in-process ones where they apply):
exact all-or-nothing rate limits, revoked ids, the change feed, the leader lease, Redis down."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from redis.asyncio import Redis

from bastion.core.errors import ServiceUnavailable
from bastion.core.ports import RateLimiter, Revocations
from bastion.core.upstream_sessions import caller_digest, caller_key
from bastion.store.memory import LocalChangeFeed, MemoryRateLimiter, MemoryRevocations
from bastion.store.shared.client import RedisReadiness, make_redis
from bastion.store.shared.feed import RedisChangeFeed
from bastion.store.shared.leader import RedisLeadership
from bastion.store.shared.limits import RedisRateLimiter, RedisRevocations
from tests.replicas.cluster import REDIS_URL, free_port, private_redis

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["memory", "redis"])
def limiter(request: pytest.FixtureRequest, redis: Redis, prefix: str) -> RateLimiter:
    return MemoryRateLimiter() if request.param == "memory" else RedisRateLimiter(redis, prefix)


@pytest.fixture(params=["memory", "redis"])
def revocations(request: pytest.FixtureRequest, redis: Redis, prefix: str) -> Revocations:
    return MemoryRevocations() if request.param == "memory" else RedisRevocations(redis, prefix)


async def test_a_limit_allows_exactly_its_count_then_says_when_to_retry(limiter: RateLimiter) -> None:
    counters = [("tok:a", 3, 3600)]
    assert [await limiter.hit(counters) for _ in range(3)] == [None, None, None]
    refused = await limiter.hit(counters)
    assert refused is not None
    index, retry_after = refused
    assert index == 0 and 1 <= retry_after <= 3600


async def test_a_refused_call_counts_against_none_of_its_limits(limiter: RateLimiter) -> None:
    assert await limiter.hit([("tight", 1, 3600), ("loose", 2, 3600)]) is None
    refused = await limiter.hit([("loose", 2, 3600), ("tight", 1, 3600)])
    assert refused is not None and refused[0] == 1  # the second counter is the used-up one
    assert await limiter.hit([("loose", 2, 3600)]) is None  # "loose" counted once, not twice
    assert await limiter.hit([("loose", 2, 3600)]) is not None


async def test_redis_limits_are_exact_for_concurrent_callers_on_several_replicas(redis: Redis, prefix: str) -> None:
    other = make_redis(REDIS_URL)
    try:
        replicas = [RedisRateLimiter(redis, prefix), RedisRateLimiter(other, prefix)]
        allowed: list[bool] = []

        async def call(i: int) -> None:
            allowed.append(await replicas[i % 2].hit([("srv:vs", 20, 3600)]) is None)

        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(call, i)
        assert allowed.count(True) == 20
    finally:
        await other.aclose()


async def test_revoked_ids_are_remembered_for_their_ttl(revocations: Revocations) -> None:
    assert not await revocations.is_revoked("t1")
    await revocations.revoke("t1", ttl=60)
    assert await revocations.is_revoked("t1")
    assert not await revocations.is_revoked("t2")


async def test_a_revoked_id_expires_in_redis(redis: Redis, prefix: str) -> None:
    await RedisRevocations(redis, prefix).revoke("t1", ttl=30)
    assert 0 < await redis.pttl(f"{prefix}:revoked:t1") <= 30_000


class Recorder:
    """What a change feed delivered, with an event per delivery."""

    def __init__(self) -> None:
        self.changes = 0
        self.revoked: list[str] = []
        self.roots: list[str] = []
        self.event = anyio.Event()

    async def on_change(self) -> None:
        self.changes += 1
        self._wake()

    async def on_revoke(self, token_id: str) -> None:
        self.revoked.append(token_id)
        self._wake()

    async def on_roots(self, caller: str) -> None:
        self.roots.append(caller)
        self._wake()

    def _wake(self) -> None:
        self.event.set()
        self.event = anyio.Event()

    async def until(self, condition: Any) -> None:
        with anyio.fail_after(10):
            while not condition():
                await self.event.wait()


async def test_the_feed_tells_other_replicas_of_changes_and_revocations(redis: Redis, prefix: str) -> None:
    # No periodic catch-up during the test: one racing a replica's own publish (its GET of the version
    # answered between the publish's INCR and its noting the version) reloads it once more, harmlessly,
    # which is not what this test is about (the messages).
    here = RedisChangeFeed(redis, prefix, "r1", resync_interval=3600)
    there = RedisChangeFeed(redis, prefix, "r2", resync_interval=3600)
    mine, theirs = Recorder(), Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(here.run, mine.on_change, mine.on_revoke)
        tg.start_soon(there.run, theirs.on_change, theirs.on_revoke)
        with anyio.fail_after(10):
            await here.connected.wait()
            await there.connected.wait()
        before_mine, before_theirs = mine.changes, theirs.changes  # each reloaded once on connecting
        await here.publish_change()
        await theirs.until(lambda: theirs.changes == before_theirs + 1)
        await here.publish_revocation("t7")
        await theirs.until(lambda: theirs.revoked == ["t7"])
        assert mine.changes == before_mine and mine.revoked == []  # a replica ignores its own news
        tg.cancel_scope.cancel()


async def test_the_feed_tells_other_replicas_whose_roots_changed(redis: Redis, prefix: str) -> None:
    here = RedisChangeFeed(redis, prefix, "r1", resync_interval=3600)
    there = RedisChangeFeed(redis, prefix, "r2", resync_interval=3600)
    unhandled = RedisChangeFeed(redis, prefix, "r3", resync_interval=3600)  # run without a roots handler
    mine, theirs, others = Recorder(), Recorder(), Recorder()
    caller = caller_digest(caller_key("u1", "session-key", None))
    async with anyio.create_task_group() as tg:
        tg.start_soon(here.run, mine.on_change, mine.on_revoke, mine.on_roots)
        tg.start_soon(there.run, theirs.on_change, theirs.on_revoke, theirs.on_roots)
        tg.start_soon(unhandled.run, others.on_change, others.on_revoke)
        with anyio.fail_after(10):
            for feed in (here, there, unhandled):
                await feed.connected.wait()
        before = theirs.changes, others.changes
        await here.publish_roots(caller)
        await theirs.until(lambda: theirs.roots == [caller])
        await here.publish_revocation("t8")  # after the roots message on the one channel
        await others.until(lambda: others.revoked == ["t8"])
        assert mine.roots == [] and others.revoked == ["t8"]  # its own news; no handler: ignored
        assert (theirs.changes, others.changes) == before  # a roots message reloads nothing
        tg.cancel_scope.cancel()


async def test_a_roots_message_carries_no_session_or_user(redis: Redis, prefix: str) -> None:
    """The message names the caller by a hash of its key: neither the user nor the session's key
    (made from its id) is in Redis."""
    feed = RedisChangeFeed(redis, prefix, "r1")
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(f"{prefix}:changes")
    try:
        await feed.publish_roots(caller_digest(caller_key("alice@example.com", "the-session-key", None)))
        with anyio.fail_after(10):
            message = None
            while message is None:
                message = await pubsub.get_message(timeout=5)
        body = message["data"].decode()
        assert json.loads(body)["kind"] == "roots"
        assert "alice" not in body and "the-session-key" not in body
    finally:
        await pubsub.aclose()


async def test_one_replica_announces_roots_to_nobody() -> None:
    await LocalChangeFeed().publish_roots(caller_digest("u|s|k"))  # nobody else to tell: nothing raised


async def test_a_replica_that_missed_a_message_reloads_from_the_version(redis: Redis, prefix: str) -> None:
    feed = RedisChangeFeed(redis, prefix, "r1", resync_interval=0.2)
    seen = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(feed.run, seen.on_change, seen.on_revoke)
        with anyio.fail_after(10):
            await feed.connected.wait()
        before = seen.changes
        await redis.incr(f"{prefix}:config-version")  # a change whose message never arrived
        await seen.until(lambda: seen.changes == before + 1)
        tg.cancel_scope.cancel()


async def test_one_replica_holds_the_lease_and_another_takes_over_when_it_stops(redis: Redis, prefix: str) -> None:
    first, second = (RedisLeadership(redis, prefix, name, lease=1.0) for name in ("r1", "r2"))
    async with anyio.create_task_group() as tg:
        scopes = {}
        for lease in (first, second):
            scope = anyio.CancelScope()
            scopes[lease] = scope

            async def hold(lease: RedisLeadership = lease, scope: anyio.CancelScope = scope) -> None:
                with scope:
                    await lease.run()

            tg.start_soon(hold)
        with anyio.fail_after(10):
            while not (first.is_leader() or second.is_leader()):
                await anyio.sleep(0.02)  # the lease loop has no event to wait on
        leader, other = (first, second) if first.is_leader() else (second, first)
        assert not other.is_leader()
        scopes[leader].cancel()
        with anyio.fail_after(10):
            while not other.is_leader():
                await anyio.sleep(0.02)
        assert not leader.is_leader()
        tg.cancel_scope.cancel()


async def test_with_redis_down_calls_that_need_it_fail_clearly_and_nothing_hangs() -> None:
    gone = make_redis(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    try:
        with anyio.fail_after(10):
            with pytest.raises(ServiceUnavailable):
                await RedisRateLimiter(gone, "p").hit([("k", 1, 60)])
            with pytest.raises(ServiceUnavailable):
                await RedisRevocations(gone, "p").is_revoked("t1")
            problem = await RedisReadiness(gone).problem()
            assert problem is not None and problem.startswith("redis unreachable")
            await RedisChangeFeed(gone, "p", "r1").publish_change()  # deferred, not raised
    finally:
        await gone.aclose()


async def test_roots_that_cannot_be_announced_are_logged_once_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    gone = make_redis(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    try:
        feed = RedisChangeFeed(gone, "p", "r1")
        with anyio.fail_after(10):
            for _ in range(3):
                await feed.publish_roots("c")
        warned = [r for r in caplog.records if "changed roots" in r.getMessage()]
        assert len(warned) == 1 and warned[0].levelname == "WARNING"
    finally:
        await gone.aclose()


async def test_a_change_made_while_redis_was_down_is_announced_when_it_is_back(tmp_path: Path) -> None:
    with private_redis(tmp_path) as (url, _stop, start):
        client = make_redis(url)
        try:
            feed = RedisChangeFeed(client, "p", "r1")
            await feed.publish_change()  # Redis is not running yet: deferred
            await start()
            assert await client.get("p:config-version") is None
            async with anyio.create_task_group() as tg:
                tg.start_soon(feed.run, Recorder().on_change, Recorder().on_revoke)
                with anyio.fail_after(15):
                    await feed.connected.wait()
                assert await client.get("p:config-version") == b"1"
                tg.cancel_scope.cancel()
        finally:
            await client.aclose()
