"""Fixtures for the shared-state stores: the real Redis, and a key prefix of each test's own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bastion.store.shared.client import make_redis
from tests.replicas.cluster import REDIS_URL


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = make_redis(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis: Redis) -> AsyncIterator[str]:
    """A key prefix of this test's own, its keys deleted afterwards (never FLUSHALL)."""
    value = f"bastion-test-{uuid.uuid4().hex[:10]}"
    yield value
    keys = [k async for k in redis.scan_iter(match=f"{value}:*")]
    if keys:
        await redis.delete(*keys)
