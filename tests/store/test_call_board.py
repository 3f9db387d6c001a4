"""The async facade calls' board in the real Redis: records sealed under hashed keys, bound to their
call (a record moved to another call's key does not open), answers queued in order; and how a
replica that does not run a call reads its record (a lapsed lease is a failed call)."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bastion.store.shared.calls import RedisCallBoard
from bastion.vault.crypto import Sealer
from bastion.web.rest.facade_calls import remote_view

pytestmark = pytest.mark.anyio
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def board() -> AsyncIterator[tuple[RedisCallBoard, Redis, str]]:
    prefix = f"bastion-test-{uuid.uuid4().hex[:10]}"
    redis = Redis.from_url(REDIS_URL)
    try:
        yield RedisCallBoard(redis, prefix, Sealer(os.urandom(32))), redis, prefix
    finally:
        names = [k async for k in redis.scan_iter(match=f"{prefix}:*")]
        if names:
            await redis.delete(*names)
        await redis.aclose()


async def test_records_are_sealed_bound_to_their_call_and_answers_queue(board: tuple[RedisCallBoard, Redis, str]) -> None:
    calls, redis, prefix = board
    # Markers long enough that a random ciphertext cannot contain them by chance ("u1" did, 1 run in ~30).
    owner = "owner-of-call-a-4f1c9e"
    record = {"owner": owner, "server": "vs", "view": {"state": "running", "progress": []}, "asks": 0, "alive_until": 1.0}
    await calls.put("call-a", record, 60)
    await calls.put("call-b", {**record, "owner": "owner-of-call-b-7d2e0a"}, 60)
    assert await calls.get("call-a") == record
    assert await calls.get("nothing") is None
    key_a = f"{prefix}:call:" + hashlib.sha256(b"call-a").hexdigest()
    key_b = f"{prefix}:call:" + hashlib.sha256(b"call-b").hexdigest()
    raw = await redis.get(key_a)
    assert raw is not None and owner.encode() not in raw and b"call-a" not in raw
    assert 0 < await redis.pttl(key_a) <= 60_000
    await redis.set(key_b, raw)  # another call's record under this key: it does not open
    assert await calls.get("call-b") is None

    await calls.answer("call-a", {"action": "accept", "n": 1}, 60)
    await calls.answer("call-a", {"action": "accept", "n": 2}, 60)
    assert await calls.take_answer("call-b") is None
    assert (await calls.take_answer("call-a"))["n"] == 1  # type: ignore[index]
    assert (await calls.take_answer("call-a"))["n"] == 2  # type: ignore[index]
    assert await calls.take_answer("call-a") is None


def test_a_running_call_whose_lease_lapsed_reads_as_failed() -> None:
    running = {"view": {"state": "input_required", "progress": [], "question": {"method": "x"}}, "alive_until": time.time() - 1}
    lapsed = remote_view(running)
    assert lapsed["state"] == "failed" and lapsed["error"]["status"] == 503 and "question" not in lapsed
    alive = remote_view({**running, "alive_until": time.time() + 10})
    assert alive["state"] == "input_required" and alive["question"] == {"method": "x"}
    done = {"view": {"state": "completed", "progress": [], "result": {"ok": True}}, "alive_until": 0}
    assert remote_view(done)["state"] == "completed"


async def test_a_forgotten_call_leaves_neither_its_record_nor_its_answers(board: tuple[RedisCallBoard, Redis, str]) -> None:
    calls, redis, prefix = board
    record = {"owner": "o", "server": "vs", "view": {"state": "completed", "progress": []}, "asks": 0, "alive_until": 1.0}
    await calls.put("call-a", record, 60)
    await calls.put("call-b", record, 60)
    await calls.answer("call-a", {"action": "accept"}, 60)
    await calls.forget("call-a")
    await calls.forget("never-was")
    assert await calls.get("call-a") is None and await calls.take_answer("call-a") is None
    assert await calls.get("call-b") == record  # another call's record stays
    assert [k async for k in redis.scan_iter(match=f"{prefix}:*")] == [
        f"{prefix}:call:{hashlib.sha256(b'call-b').hexdigest()}".encode()
    ]
