"""Fixtures for the stores: the real Redis, a key prefix of each test's own, and a database of each
kind a store keeps one contract on (in memory, SQLite, PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import nullcontext
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.store.shared.client import make_redis
from bastion.store.sql.migrate import upgrade
from bastion.store.sql.repo import make_engine
from tests.harness import postgres_database
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


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store_engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine | None]:
    """Each kind of store in turn: None for the in-memory one, else an engine on a fresh, migrated
    SQLite or PostgreSQL database (disposed of afterwards)."""
    if request.param == "memory":
        yield None
        return
    database = postgres_database() if request.param == "postgres" else nullcontext(f"sqlite+aiosqlite:///{tmp_path}/store.db")
    async with database as url:
        engine = make_engine(url)
        try:
            await upgrade(engine)
            yield engine
        finally:
            await engine.dispose()
