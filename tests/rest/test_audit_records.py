"""What the audit log says about a change: a create names what it created (never a secret), a use of
an unknown tool names the tool asked for, and a read of the whole configuration is recorded.

Before, every create was recorded with an empty target and field names only, so nobody could tell
from the log which user (with what role), token or upstream a stolen credential had made; a probe
for a tool left no name; and the configuration export left no trace."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import MCPError
from sqlalchemy import select

from bastion.store.sql.tables import audit_records
from tests.harness import Running, serve, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio

PLANTED = "planted-upstream-secret-41c7"
PASSWORD = "planted password 9d2e correct horse"


@pytest.fixture
async def logged(tmp_path: Path) -> AsyncIterator[Running]:
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", log_level="INFO")) as gateway:
        yield gateway


async def _records(gateway: Running) -> list[dict[str, Any]]:
    listed = await gateway.api.get("/api/v1/audit", params={"limit": "200"})  # flushes what is pending
    assert listed.status_code == 200, listed.text
    return list(listed.json()["items"])


async def _table(gateway: Running) -> str:
    """Every row of the audit table as stored, as one text."""
    async with gateway.bastion.engine.connect() as conn:
        rows = (await conn.execute(select(audit_records))).all()
    return json.dumps([dict(r._mapping) for r in rows], default=str)


async def test_each_create_names_what_it_created_and_never_its_secret(
    logged: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    api = logged.api
    await logged.register(stdio_fixture("fx") | {"env": {"FIXTURE_SECRET": PLANTED}})
    await logged.create_server({"name": "vs", "upstreams": ["fx"]})
    user = await api.post("/api/v1/users", json={"email": "Mallory@Example.com", "password": PASSWORD, "role": "admin"})
    assert user.status_code == 201, user.text
    assert (await api.post("/api/v1/teams", json={"name": "ops"})).status_code == 201
    assert (await api.post("/api/v1/teams/ops/members", json={"user": "mallory@example.com"})).status_code == 200
    token = await api.post("/api/v1/tokens", json={"name": "ci-deploy", "servers": ["vs"]})
    assert token.status_code == 201, token.text
    secret = token.json()["token"]

    records = await _records(logged)
    created = {r["action"]: r for r in records if r["action"].startswith("POST ") and r["outcome"] == "ok"}
    assert created["POST /api/v1/upstreams"]["target"] == "fx"
    assert created["POST /api/v1/servers"]["target"] == "vs"
    assert created["POST /api/v1/teams"]["target"] == "ops"
    assert created["POST /api/v1/teams/{name}/members"]["target"] == "ops/mallory@example.com"
    made = created["POST /api/v1/users"]
    assert user.json()["id"] in made["target"] and "mallory@example.com" in made["target"]
    assert "role: admin" in made["detail"]
    issued = created["POST /api/v1/tokens"]
    assert token.json()["id"] in issued["target"] and "ci-deploy" in issued["target"]

    # The secrets are nowhere: not in a record as listed, not in the table, not in a log line.
    stored = await _table(logged)
    for value in (secret, PASSWORD, PLANTED):
        assert value not in json.dumps(records)
        assert value not in stored
        assert all(value not in r.getMessage() and value not in json.dumps(vars(r), default=str) for r in caplog.records)
    assert (await api.post("/api/v1/audit/verify")).json()["ok"] is True


async def test_a_refused_create_names_nothing_it_did_not_make(logged: Running) -> None:
    refused = await logged.api.post("/api/v1/users", json={"email": "x@example.com", "password": "short", "role": "root"})
    assert refused.status_code == 400
    records = [r for r in await _records(logged) if r["action"] == "POST /api/v1/users"]
    assert records and records[0]["target"] == "" and records[0]["outcome"] == "invalid"
    assert "short" not in json.dumps(records)


async def test_a_call_of_an_unknown_tool_records_the_name_asked_for_bounded_and_shown(logged: Running) -> None:
    await logged.register(stdio_fixture("fx"))
    await logged.create_server({"name": "vs", "upstreams": ["fx"]})
    probe = "fx__admin_reset\u202egnp.exe" + "x" * 1000
    async with logged.client("vs", mode="2026-07-28") as client:
        with pytest.raises(MCPError):
            await client.call_tool("fx__no_such_tool", {})
        with pytest.raises(MCPError):
            await client.call_tool(probe, {})
    calls = [r for r in await _records(logged) if r["action"] == "tools/call"]
    targets = {r["target"] for r in calls}
    assert "fx__no_such_tool" in targets
    long = [t for t in targets if t.startswith("fx__admin_reset")]
    assert long == ["fx__admin_reset\\u202egnp.exe" + "x" * (200 - len("fx__admin_reset\u202egnp.exe"))]
    assert all(r["outcome"] == "invalid" for r in calls)
    assert (await logged.api.post("/api/v1/audit/verify")).json()["ok"] is True


async def test_a_read_of_the_whole_configuration_is_audited(logged: Running) -> None:
    exported = await logged.api.get("/api/v1/config")
    assert exported.status_code == 200, exported.text
    reads = [r for r in await _records(logged) if r["action"] == "GET /api/v1/config"]
    assert len(reads) == 1 and reads[0]["outcome"] == "ok" and reads[0]["actor_client"] == "admin"
    # Other reads stay out of the audit log (they are logged, not recorded).
    await logged.api.get("/api/v1/upstreams")
    assert not [r for r in await _records(logged) if r["action"] == "GET /api/v1/upstreams"]
