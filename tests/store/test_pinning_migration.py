"""Migration 0012 on a database that already holds upstreams: they get pin `warn`, their catalog approved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from bastion.core.pinning import definition_hash
from bastion.store.sql.migrate import upgrade
from bastion.store.sql.repo import make_engine
from tests.store.test_identity_migration import _upgrade_to
from tests.store.test_migrations import fresh_database

pytestmark = pytest.mark.anyio

ECHO = {"name": "echo", "description": "Return the text.", "inputSchema": {"type": "object"}, "_meta": {"x": 1}}


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_existing_upstreams_are_warned_and_their_catalog_is_approved_as_it_stands(kind: str, tmp_path: Path) -> None:
    async with fresh_database(kind, tmp_path) as url:
        engine = make_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(_upgrade_to, "0008")
                await conn.execute(text(
                    "INSERT INTO upstreams (id, name, transport, args, env, headers, isolation, enabled, status,"
                    " visibility, created_at, updated_at) VALUES (1, 'fx', 'stdio', '[]', '{}', '{}', 'shared', true,"
                    " 'unknown', 'private', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ))
                await conn.execute(
                    text(
                        "INSERT INTO catalog_items (upstream_id, kind, key, gateway_name, definition, enabled,"
                        " discovered_at) VALUES (1, 'tool', 'echo', 'fx__echo', :d, true, CURRENT_TIMESTAMP)"
                    ),
                    {"d": json.dumps(ECHO)},
                )
            await upgrade(engine)
            async with engine.connect() as conn:
                pin = (await conn.execute(text("SELECT pin, pin_trust_next FROM upstreams"))).one()
                record = (await conn.execute(text("SELECT kind, key, approved_hash FROM pin_records"))).one()
                items = (await conn.execute(text("SELECT count(*) FROM catalog_items"))).scalar()
            assert (pin[0], bool(pin[1]), items) == ("warn", False, 1)
            assert tuple(record) == ("tool", "echo", definition_hash("tool", ECHO))
        finally:
            await engine.dispose()
