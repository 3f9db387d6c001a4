"""`bastion audit` and `bastion usage` against a real gateway (the CLI runs in a thread)."""

from __future__ import annotations

import json

import anyio
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import update

from bastion.cli.main import cli
from bastion.store.sql.tables import audit_records
from tests.harness import TOKEN, Running, stdio_fixture

pytestmark = pytest.mark.anyio


async def run(gateway: Running, *args: str) -> Result:
    env = {"BASTION_URL": gateway.base_url, "BASTION_TOKEN": TOKEN, "NO_PROXY": "127.0.0.1,localhost"}
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli, list(args), env=env))


async def test_usage_tables_and_audit_export_and_verify(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "tools": ["fx__echo", "fx__add", "fx__fail"]})
    async with gateway.client("vs", mode="2026-07-28") as client:
        for n in range(3):
            await client.call_tool("fx__echo", {"text": str(n)})
        await client.call_tool("fx__fail", {"message": "no"})

    data = json.loads((await run(gateway, "usage", "--json")).stdout)
    by_item = {i["item"]: i for i in data["items"]}
    assert by_item["fx__echo"]["calls"] == 3 and by_item["fx__echo"]["errors"] == 0
    assert by_item["fx__fail"]["errors"] == 1 and by_item["fx__echo"]["distinct_callers"] == 1
    assert by_item["fx__echo"]["p95_ms"] is not None
    table = await run(gateway, "usage", "--group-by", "server")
    assert table.exit_code == 0 and "vs" in table.stdout and "4" in table.stdout
    unused = json.loads((await run(gateway, "usage", "unused", "--days", "30", "--json")).stdout)
    names = {i["name"] for i in unused["items"]}
    assert "fx__add" in names and "fx__echo" not in names

    listed = await run(gateway, "audit", "list", "--action", "tools/call")
    assert listed.exit_code == 0 and "fx__echo" in listed.stdout
    exported = await run(gateway, "audit", "export", "--since", "2000-01-01")
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [line["id"] for line in lines] == sorted(line["id"] for line in lines)
    assert sum(1 for line in lines if line["action"] == "tools/call") == 4
    verified = await run(gateway, "audit", "verify")
    assert verified.exit_code == 0 and "intact" in verified.stdout

    async with gateway.bastion.engine.begin() as conn:
        await conn.execute(update(audit_records).where(audit_records.c.id == lines[1]["id"]).values(target="forged"))
    broken = await run(gateway, "audit", "verify")
    assert broken.exit_code == 1 and "NOT intact" in broken.stderr and f"id {lines[1]['id']}" in broken.stderr


async def test_audit_list_reads_past_one_page(gateway: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--limit` past the API's page (1,000) used to be sent as it was and answered 400: the CLI
    reads page after page, following the cursor, until it has `--limit` records or there are no more."""
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "tools": ["fx__echo"]})
    async with gateway.client("vs", mode="2026-07-28") as client:
        for n in range(5):
            await client.call_tool("fx__echo", {"text": str(n)})
    await gateway.bastion.telemetry.audit.flush()

    every = json.loads((await run(gateway, "audit", "list", "--json", "--action", "tools/call", "--limit", "5000")).stdout)
    assert len(every["items"]) == 5 and every["next_cursor"] is None
    monkeypatch.setattr("bastion.cli.audit._PAGE", 2)  # the CLI runs in this process: pages of 2
    four = json.loads((await run(gateway, "audit", "list", "--json", "--action", "tools/call", "--limit", "4")).stdout)
    assert [r["id"] for r in four["items"]] == [r["id"] for r in every["items"][:4]]
    rest = json.loads((await run(gateway, "audit", "list", "--json", "--action", "tools/call", "--cursor", four["next_cursor"])).stdout)
    assert [r["id"] for r in rest["items"]] == [every["items"][4]["id"]]
    refused = await run(gateway, "audit", "list", "--limit", "0")
    assert refused.exit_code == 2 and "--limit" in refused.output
