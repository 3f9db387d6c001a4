"""Schema migrations on SQLite and PostgreSQL, and configuration surviving a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.store.sql.migrate import head_revision, upgrade
from bastion.store.sql.repo import make_engine
from tests.harness import postgres_database, serve, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio

TABLES = {
    "alembic_version", "upstreams", "catalog_items", "virtual_servers", "secret_hashes", "api_tokens",
    "users", "teams", "team_members", "user_sessions",
}


@asynccontextmanager
async def fresh_database(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/fresh.db"
    else:
        async with postgres_database() as url:
            yield url


@asynccontextmanager
async def engine_for(url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def schema(engine: AsyncEngine) -> tuple[set[str], list[str]]:
    async with engine.connect() as conn:
        tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        versions = list((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())
    return tables, versions


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_migrations_apply_to_a_fresh_database(kind: str, tmp_path: Path) -> None:
    async with fresh_database(kind, tmp_path) as url, engine_for(url) as engine:
        await upgrade(engine)
        tables, versions = await schema(engine)
        assert TABLES <= tables
        assert versions == [head_revision()]
        async with engine.connect() as conn:
            columns = await conn.run_sync(lambda c: {col["name"] for col in inspect(c).get_columns("catalog_items")})
        assert {"upstream_id", "kind", "key", "gateway_name", "definition", "enabled", "name_override"} <= columns


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_running_migrations_twice_is_a_no_op(kind: str, tmp_path: Path) -> None:
    async with fresh_database(kind, tmp_path) as url:
        async with engine_for(url) as engine:
            await upgrade(engine)
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO secret_hashes (key, value) VALUES ('probe', 'kept')"))
            before = await schema(engine)
        async with engine_for(url) as engine:  # as a second process would
            await upgrade(engine)
            await upgrade(engine)
            assert await schema(engine) == before
            async with engine.connect() as conn:
                value = (await conn.execute(text("SELECT value FROM secret_hashes WHERE key = 'probe'"))).scalar()
            assert value == "kept"


async def test_concurrent_migrations_on_postgres_serialise() -> None:
    async with postgres_database() as url:
        engines = [make_engine(url) for _ in range(3)]
        try:
            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    for engine in engines:
                        tg.start_soon(upgrade, engine)
            tables, versions = await schema(engines[0])
            assert TABLES <= tables
            assert versions == [head_revision()]
        finally:
            for engine in engines:
                await engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_configuration_survives_a_restart(kind: str, tmp_path: Path) -> None:
    async with fresh_database(kind, tmp_path) as url:
        async with serve(settings_for(url)) as first:
            await first.register({**stdio_fixture("fx"), "env": {"FX_SECRET": "kept-secret"}})
            await first.create_server({"name": "vs", "upstreams": ["fx"], "description": "survivor"})
            patched = await first.api.patch("/api/v1/tools/fx__echo", json={"name": "shout", "description": "Loud."})
            assert patched.status_code == 200, patched.text
            disabled = await first.api.patch("/api/v1/tools/fx__fail", json={"enabled": False})
            assert disabled.status_code == 200, disabled.text
            before_tools = (await first.api.get("/api/v1/tools")).json()
            before_server = (await first.api.get("/api/v1/servers/vs")).json()

        async with serve(settings_for(url)) as second:
            (upstream,) = (await second.api.get("/api/v1/upstreams")).json()["items"]
            assert upstream["name"] == "fx"
            assert upstream["env"] == {"FX_SECRET": "********"}
            assert upstream["args"] == stdio_fixture("fx")["args"]
            assert (await second.api.get("/api/v1/tools")).json() == before_tools
            after_server = (await second.api.get("/api/v1/servers/vs")).json()
            assert {k: v for k, v in after_server.items() if "url" not in k} == {
                k: v for k, v in before_server.items() if "url" not in k
            }
            assert "shout" in after_server["exposed"]["tools"]
            assert "fx__fail" not in after_server["exposed"]["tools"]
            async with second.client("vs") as client:
                assert (await client.call_tool("shout", {"text": "again"})).content[0].text == "again"
                assert (await client.call_tool("fx__add", {"a": 1, "b": 2})).structured_content == {"result": 3}
