"""Shared fixtures: anyio on asyncio, a running Bastion per test on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness import Running, postgres_database, serve, settings_for


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Running]:
    """Bastion on a fresh SQLite file."""
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/bastion.db")) as running:
        yield running


@pytest.fixture(params=["sqlite", "postgres"])
async def any_db_gateway(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Running]:
    """Bastion on SQLite and on the real PostgreSQL (a fresh database each time)."""
    if request.param == "sqlite":
        async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/bastion.db")) as running:
            yield running
    else:
        async with postgres_database() as url, serve(settings_for(url)) as running:
            yield running
