"""Shared fixtures: anyio on asyncio, a running Bastion per test on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests import harness
from tests.harness import Running, drop_test_databases, postgres_database, serve, settings_for


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In the PostgreSQL pass, skip what cannot tell the databases apart (protocol conformance, the
    browser driving the UI over the REST API, fuzzing the edges): the SQLite pass runs it."""
    if harness.TEST_DATABASE != "postgres":
        return
    skip = pytest.mark.skip(reason="database-free: runs in the SQLite pass")
    for item in items:
        if item.get_closest_marker("database_free") is not None:
            item.add_marker(skip)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _sqlite_marked(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests marked `sqlite` work on the SQLite file itself and stay on it in PostgreSQL mode."""
    harness.keep_sqlite = request.node.get_closest_marker("sqlite") is not None
    yield
    harness.keep_sqlite = False


@pytest.fixture(scope="module", autouse=True)
def _postgres_mode_cleanup() -> Iterator[None]:
    """In PostgreSQL mode (BASTION_TEST_DATABASE=postgres), drop each module's databases after it."""
    yield
    drop_test_databases()


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
