"""Migration 0004 on a database that already holds configuration: nothing is lost, all stays private."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, text

from bastion.store.sql.migrate import _config, upgrade
from bastion.store.sql.repo import make_engine
from tests.store.test_migrations import fresh_database

pytestmark = pytest.mark.anyio


def _upgrade_to(connection: Connection, revision: str) -> None:
    config = _config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_existing_upstreams_keep_their_catalog_and_become_private(kind: str, tmp_path: Path) -> None:
    async with fresh_database(kind, tmp_path) as url:
        engine = make_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(_upgrade_to, "0002")
                await conn.execute(text(
                    "INSERT INTO upstreams (id, name, transport, args, env, headers, isolation, enabled, status,"
                    " created_at, updated_at) VALUES (1, 'fx', 'stdio', '[]', '{}', '{}', 'shared', true, 'unknown',"
                    " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ))
                await conn.execute(text(
                    "INSERT INTO catalog_items (upstream_id, kind, key, gateway_name, definition, enabled,"
                    " discovered_at) VALUES (1, 'tool', 'echo', 'fx__echo', '{}', true, CURRENT_TIMESTAMP)"
                ))
            await upgrade(engine)
            async with engine.connect() as conn:
                row = (await conn.execute(text("SELECT team, owner, visibility FROM upstreams"))).one()
                items = (await conn.execute(text("SELECT count(*) FROM catalog_items"))).scalar()
            assert tuple(row) == (None, None, "private") and items == 1
        finally:
            await engine.dispose()
