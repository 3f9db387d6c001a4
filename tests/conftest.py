"""Shared fixtures: anyio on asyncio, a running Bastion per test on SQLite or PostgreSQL."""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator, Iterator
from functools import cache
from pathlib import Path

import httpcore2
import pytest

from tests import harness
from tests.harness import Running, drop_test_databases, postgres_database, serve, settings_for

_new_ssl_context = httpcore2.default_ssl_context


@cache
def _ssl_context(trust_env: bool, cafile: str | None, capath: str | None) -> ssl.SSLContext:
    return _new_ssl_context(_trust_env=trust_env)


def _shared_ssl_context(*, _trust_env: bool = True) -> ssl.SSLContext:
    """Every httpx2 client the tests make (thousands) would load the system's CA certificates into an
    SSL context of its own, ~25 ms of CPU each: over a minute of CI. One per setting serves them
    all; nothing in the suite changes a context once made (no client certificates)."""
    return _ssl_context(_trust_env, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


httpcore2.default_ssl_context = _shared_ssl_context


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
