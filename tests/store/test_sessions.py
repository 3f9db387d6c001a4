"""Session records and session event streams: in process and in the real Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import anyio
import pytest
from mcp.server.streamable_http import EventMessage
from mcp_types import JSONRPCNotification, JSONRPCResponse
from redis.asyncio import Redis

from bastion.core.ports import SessionKey, SessionRecord, SessionStore
from bastion.store.events import MemoryEventStore
from bastion.store.sessions.keys import SessionKeys
from bastion.store.sessions.memory import MemorySessionStore
from bastion.store.sessions.redis import RedisEventStore, RedisSessionStore
from bastion.store.shared.client import make_redis

pytestmark = pytest.mark.anyio

KEYS = SessionKeys(os.urandom(32))
RECORD = SessionRecord(
    server="vs",
    protocol_version="2025-11-25",
    client_info={"name": "c", "version": "1"},
    capabilities={"elicitation": {}},
    owner="admin",
    created=1.0,
    last_seen=2.0,
    log_level="info",
    subscriptions=("file:///a",),
)


@pytest.fixture
async def redis() -> AsyncIterator[tuple[Redis, str]]:
    prefix = f"bastion-test-{uuid.uuid4().hex[:12]}"
    client = make_redis("redis://127.0.0.1:6379/0")  # the client replicas use: short timeouts, no retries
    try:
        yield client, prefix
    finally:
        names = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if names:
            await client.delete(*names)
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, redis: tuple[Redis, str]) -> SessionStore:
    if request.param == "memory":
        return MemorySessionStore(KEYS, idle_ttl=60)
    return RedisSessionStore(redis[0], redis[1], KEYS, idle_ttl=60)


async def test_a_saved_record_loads_with_the_same_token_only(store: SessionStore) -> None:
    key = KEYS.key_for("sid-1", "Bearer secret-a")
    await store.save(key, RECORD)
    assert await store.load(KEYS.key_for("sid-1", "Bearer secret-a")) == RECORD
    assert await store.load(KEYS.key_for("sid-1", "Bearer secret-b")) is None
    assert await store.load(KEYS.key_for("sid-2", "Bearer secret-a")) is None


async def test_a_deleted_record_is_gone(store: SessionStore) -> None:
    key = KEYS.key_for("sid-1", "Bearer a")
    await store.save(key, RECORD)
    await store.delete(key)
    assert await store.load(key) is None


async def test_a_record_expires_when_idle(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    store = RedisSessionStore(client, prefix, KEYS, idle_ttl=60)
    key = KEYS.key_for("sid-1", "Bearer a")
    await store.save(key, RECORD)
    (name,) = [k async for k in client.scan_iter(match=f"{prefix}:session:*")]
    await client.pexpire(name, 1000)
    await store.touch(key)
    assert 1000 < await client.pttl(name) <= 60_000


async def test_a_record_sealed_for_one_key_does_not_open_with_another() -> None:
    key = KEYS.key_for("sid-1", "Bearer a")
    sealed = KEYS.seal_record(key, RECORD)
    assert KEYS.open_record(key, sealed) == RECORD
    assert KEYS.open_record(KEYS.key_for("sid-1", "Bearer b"), sealed) is None
    assert SessionKeys(os.urandom(32)).open_record(key, sealed) is None
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    assert KEYS.open_record(key, tampered) is None
    assert b"elicitation" not in sealed and b"sid-1" not in sealed


def test_a_key_made_from_an_oauth_grant_outlives_each_access_token_of_it() -> None:
    grant = '["https://b.example","client-1","family-1","user-1","https://b.example/servers/vs/mcp"]'
    key = KEYS.key_for("sid-1", "Bearer access-1", grant)
    sealed = KEYS.seal_record(key, RECORD)
    refreshed = KEYS.key_for("sid-1", "Bearer access-2", grant)
    assert refreshed == key and KEYS.open_record(refreshed, sealed) == RECORD
    other_grant = KEYS.key_for("sid-1", "Bearer access-1", grant.replace("family-1", "family-2"))
    assert other_grant != key and KEYS.open_record(other_grant, sealed) is None
    # A bearer token spelling out the grant makes another key: the two are told apart.
    assert KEYS.key_for("sid-1", f"Bearer {grant}") != key
    assert grant not in key.token_hash and "family-1" not in KEYS.address(key)


def test_the_address_names_neither_session_nor_token() -> None:
    key = KEYS.key_for("sid-1", "Bearer a-token")
    address = KEYS.address(key)
    assert "sid-1" not in address and "a-token" not in address
    assert address != KEYS.address(SessionKey("sid-1", KEYS.key_for("x", "Bearer other").token_hash))


async def test_changes_and_relayed_messages_reach_other_replicas(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    writer = RedisSessionStore(client, prefix, KEYS, idle_ttl=60)
    watcher = RedisSessionStore(client, prefix, KEYS, idle_ttl=60)
    key = KEYS.key_for("sid-1", "Bearer a")
    seen = anyio.Event()
    addresses: list[str] = []

    async def on_change(address: str) -> None:
        addresses.append(address)
        seen.set()

    relayed: list[tuple[str, bytes]] = []
    got_relay = anyio.Event()

    async def on_relayed(address: str, payload: bytes) -> None:
        relayed.append((address, payload))
        got_relay.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watcher.watch, on_change, on_relayed)
        with anyio.fail_after(10):
            # The watcher subscribes in its own task and tells no one: bounded polling on Redis.
            while (await client.pubsub_numsub(f"{prefix}:sessions:changed"))[0][1] == 0:
                await anyio.sleep(0.01)
            await writer.delete(key)
            await seen.wait()
            await writer.relay(KEYS.address(key), b"sealed\nbytes")
            await got_relay.wait()
        tg.cancel_scope.cancel()
    assert addresses == [KEYS.address(key)]
    assert relayed == [(KEYS.address(key), b"sealed\nbytes")]


def _note(n: int) -> JSONRPCNotification:
    return JSONRPCNotification(jsonrpc="2.0", method="notifications/message", params={"n": n})


@pytest.fixture(params=["memory", "redis"])
def events(request: pytest.FixtureRequest, redis: tuple[Redis, str]) -> MemoryEventStore | RedisEventStore:
    if request.param == "memory":
        return MemoryEventStore(per_stream=3)
    return RedisEventStore(redis[0], redis[1], KEYS, per_stream=3)


async def _replay(store: object, last_event_id: str) -> tuple[str | None, list[EventMessage]]:
    got: list[EventMessage] = []

    async def collect(event: EventMessage) -> None:
        got.append(event)

    stream = await store.replay_events_after(last_event_id, collect)  # type: ignore[attr-defined]
    return stream, got


async def test_events_replay_after_an_id_within_the_session_only(events: MemoryEventStore | RedisEventStore) -> None:
    mine, theirs = events.for_session("s1"), events.for_session("s2")
    priming = await mine.store_event("7", None)
    first = await mine.store_event("7", _note(1))
    await mine.store_event("7", _note(2))
    await theirs.store_event("7", _note(99))
    stream, got = await _replay(mine, priming)
    assert stream == "7"
    assert [e.message.params for e in got] == [{"n": 1}, {"n": 2}]  # type: ignore[union-attr]
    assert got[0].event_id == first
    assert await _replay(mine, "8/1-0" if isinstance(events, RedisEventStore) else "8/1") == (None, [])
    _, got = await _replay(theirs, priming)  # another session's cursor: at most its own events
    assert all(e.message.params == {"n": 99} for e in got)  # type: ignore[union-attr]


async def test_a_stream_keeps_only_its_newest_events(events: MemoryEventStore | RedisEventStore) -> None:
    session = events.for_session("s1")
    first = await session.store_event("_GET_stream", _note(0))
    for n in range(1, 6):
        await session.store_event("_GET_stream", _note(n))
    _, got = await _replay(session, first)
    assert [e.message.params for e in got] == [{"n": 3}, {"n": 4}, {"n": 5}]  # type: ignore[union-attr]


async def test_a_response_event_round_trips(events: MemoryEventStore | RedisEventStore) -> None:
    session = events.for_session("s1")
    cursor = await session.store_event("3", None)
    response = JSONRPCResponse(jsonrpc="2.0", id=3, result={"content": [{"type": "text", "text": "ok"}]})
    await session.store_event("3", response)
    _, got = await _replay(session, cursor)
    assert [e.message for e in got] == [response]
