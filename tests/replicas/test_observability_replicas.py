"""Three real replicas on PostgreSQL + Redis: usage figures add up across them, each writes its own
audit chain and the log verifies, and a replica stopped with SIGTERM loses no audit record."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import stdio_fixture
from tests.replicas.cluster import replicas
from tests.replicas.test_replicas import known_everywhere

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def test_usage_adds_up_across_replicas_and_every_chain_verifies(tmp_path: Path) -> None:
    async with replicas(3, tmp_path) as cluster:
        first = cluster[0]
        assert (await first.api.post("/api/v1/upstreams", json=stdio_fixture("fx"))).status_code == 201
        created = await first.api.post("/api/v1/servers", json={"name": "vs", "tools": ["fx__echo", "fx__add"]})
        assert created.status_code == 201, created.text
        tokens = []
        for n in range(3):
            made = await first.api.post("/api/v1/tokens", json={"name": f"t{n}", "servers": ["vs"]})
            tokens.append(made.json()["token"])
        await known_everywhere(cluster[1:], "vs")
        calls = {0: 2, 1: 3, 2: 4}
        for index, replica in enumerate(cluster):
            for n in range(calls[index]):
                reply = await replica.call_tool("vs", "fx__echo", {"text": str(n)}, token=tokens[index])
                assert "result" in reply, reply
        await cluster[2].call_tool("vs", "fx__add", {"a": 1, "b": "x"}, token=tokens[2])

        # A replica is stopped cleanly (SIGTERM): what it recorded is written before it exits.
        last = cluster[2]
        last.process.terminate()
        last.process.wait(timeout=30)  # uvicorn re-raises SIGTERM once it has shut down
        for replica in cluster[:2]:  # each read flushes the replica's own latest counts and records first
            await replica.api.get("/api/v1/usage")
            await replica.api.get("/api/v1/audit", params={"limit": "1"})
        usage = (await first.api.get("/api/v1/usage", params={"tool": "fx__echo"})).json()
        [echo] = usage["items"]
        assert echo["calls"] == sum(calls.values()) and echo["errors"] == 0 and echo["distinct_callers"] == 3
        by_server = (await cluster[1].api.get("/api/v1/usage", params={"group_by": "server"})).json()["items"]
        assert by_server == [{**by_server[0], "server": "vs", "calls": 10}]

        records = (await first.api.get("/api/v1/audit", params={"action": "tools/call", "limit": "100"})).json()
        per_chain: dict[str, int] = {}
        for record in records["items"]:
            per_chain[record["chain"]] = per_chain.get(record["chain"], 0) + 1
        assert sorted(per_chain.values()) == [2, 3, 5]  # the stopped replica's five calls included
        verdict = (await cluster[1].api.post("/api/v1/audit/verify")).json()
        assert verdict["ok"] is True and verdict["chains"] == 3, verdict
