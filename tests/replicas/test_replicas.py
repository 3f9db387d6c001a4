"""Three real replicas sharing PostgreSQL and Redis: changes, revocations, rate limits and the
leader lease hold across them, and a Redis restart is survived."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.e2e.test_list_changed import ToolListChanges, tool_names
from tests.harness import Running, stdio_fixture
from tests.replicas.cluster import Replica, private_redis, replicas

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


def as_running(replica: Replica) -> Running:
    """The harness's client helpers, pointed at a replica process."""
    return Running(bastion=None, base_url=replica.base_url, api=replica.api)  # type: ignore[arg-type]


async def eventually(check: Any, timeout: float = 15) -> None:
    """Poll `check` (async, returns bool) under a deadline: replicas tell each other asynchronously."""
    with anyio.fail_after(timeout):
        while not await check():
            await anyio.sleep(0.05)


async def known_everywhere(cluster: Sequence[Replica], server: str, timeout: float = 30) -> None:
    """Wait until every replica has heard of virtual server `server` (made on one of them)."""
    for replica in cluster:

        async def visible(replica: Replica = replica) -> bool:
            return (await replica.api.get(f"/api/v1/servers/{server}")).status_code == 200

        await eventually(visible, timeout)


async def test_a_change_on_one_replica_reaches_the_others_and_their_clients(tmp_path: Path) -> None:
    async with replicas(3, tmp_path) as (r1, r2, r3):
        assert (await r1.api.post("/api/v1/upstreams", json=stdio_fixture("fx"))).status_code == 201
        created = await r1.api.post("/api/v1/servers", json={"name": "vs", "tools": ["fx__echo"]})
        assert created.status_code == 201, created.text
        await known_everywhere((r2, r3), "vs")
        for other in (r2, r3):
            assert (await other.api.get("/api/v1/upstreams/fx")).json()["counts"]["tools"] > 0

        changes = {r2.port: ToolListChanges(), r3.port: ToolListChanges()}
        async with (
            as_running(r2).client("vs", mode="legacy", message_handler=changes[r2.port].handler) as c2,
            as_running(r3).client("vs", mode="legacy", message_handler=changes[r3.port].handler) as c3,
        ):
            assert await tool_names(c2) == await tool_names(c3) == {"fx__echo"}
            # A notice sent before a client's GET stream is open is lost, and nothing says when it
            # is open: change a description on replica 1 until both clients have heard one.
            with anyio.fail_after(20):
                attempt = 0
                while not all(c.count for c in changes.values()):
                    attempt += 1
                    body = {"description": f"primed {attempt}"}
                    assert (await r1.api.patch("/api/v1/tools/fx__echo", json=body)).status_code == 200
                    with anyio.move_on_after(0.3):
                        for c in changes.values():
                            await c.wait_for(1)

            seen = {port: c.count for port, c in changes.items()}
            patched = await r1.api.patch("/api/v1/servers/vs", json={"tools": ["fx__echo", "fx__add"]})
            assert patched.status_code == 200, patched.text
            for client, port in ((c2, r2.port), (c3, r3.port)):
                with anyio.fail_after(15):
                    while "fx__add" not in await tool_names(client):
                        await changes[port].wait_for(seen[port] + 1)
                        seen[port] = changes[port].count
                # The upstream was registered on replica 1; this replica connects to it on first use.
                added = await client.call_tool("fx__add", {"a": 2, "b": 3})
                assert added.structured_content == {"result": 5}


async def test_revoking_a_token_on_one_replica_is_refused_at_once_on_the_others(tmp_path: Path) -> None:
    async with replicas(3, tmp_path) as (r1, r2, r3):
        created = await r1.api.post("/api/v1/tokens", json={"name": "reader", "permissions": ["read"]})
        assert created.status_code == 201, created.text
        token, secret = created.json()["id"], created.json()["token"]
        as_token = {"Authorization": f"Bearer {secret}"}
        for replica in (r1, r2, r3):  # every replica now holds the token in its cache
            assert (await replica.api.get("/api/v1/servers", headers=as_token)).status_code == 200

        assert (await r1.api.delete(f"/api/v1/tokens/{token}")).status_code == 204

        for replica in (r2, r3, r1):
            refused = await replica.api.get("/api/v1/servers", headers=as_token)
            assert refused.status_code == 401, refused.text


async def test_a_rate_limit_holds_across_replicas(tmp_path: Path) -> None:
    async with replicas(3, tmp_path) as cluster:
        r1 = cluster[0]
        assert (await r1.api.post("/api/v1/upstreams", json=stdio_fixture("fx"))).status_code == 201
        # A day-long window: a window boundary in the middle of the test would reset the count.
        body = {"name": "vs", "tools": ["fx__echo"], "rate_limits": {"token": "4/day"}}
        assert (await r1.api.post("/api/v1/servers", json=body)).status_code == 201
        created = await r1.api.post("/api/v1/tokens", json={"name": "agent", "servers": ["vs"]})
        secret = created.json()["token"]
        await known_everywhere(cluster, "vs")

        replies = [
            await cluster[i % 3].call_tool("vs", "fx__echo", {"text": str(i)}, token=secret) for i in range(9)
        ]
        allowed = [r for r in replies if "result" in r]
        refused = [r["error"] for r in replies if "error" in r]
        assert len(allowed) == 4
        assert len(refused) == 5
        assert {e["code"] for e in refused} == {-32029}
        assert all(e["data"]["type"] == "RateLimited" and e["data"]["retry_after"] >= 1 for e in refused)
        # Another caller has its own count.
        assert "result" in await cluster[1].call_tool("vs", "fx__echo", {"text": "admin"})


async def test_only_the_leader_runs_health_checks_and_another_takes_over_when_it_dies(tmp_path: Path) -> None:
    async with replicas(3, tmp_path, health_interval="0.3", leader_lease="2") as cluster:

        async def one_leader_checking(group: list[Replica]) -> bool:
            infos = [await r.cluster_info() for r in group]
            leaders = [i for i in infos if i["leader"]]
            return len(leaders) == 1 and leaders[0]["health_checks"] >= 2

        await eventually(lambda: one_leader_checking(cluster), timeout=30)
        infos = {r.port: await r.cluster_info() for r in cluster}
        leader = next(r for r in cluster if infos[r.port]["leader"])
        assert all(infos[r.port]["health_checks"] == 0 for r in cluster if r is not leader)

        leader.kill()
        survivors = [r for r in cluster if r is not leader]
        await eventually(lambda: one_leader_checking(survivors), timeout=30)
        infos = {r.port: await r.cluster_info() for r in survivors}
        assert sorted(i["leader"] for i in infos.values()) == [False, True]
        assert [i["health_checks"] for i in infos.values() if not i["leader"]] == [0]


async def test_a_redis_restart_is_survived_with_clear_errors_while_it_is_down(tmp_path: Path) -> None:
    with private_redis(tmp_path) as (redis_url, stop_redis, start_redis):
        await start_redis()
        async with replicas(2, tmp_path, redis_url=redis_url, rate_limit_token="1000/day") as (r1, r2):
            assert (await r1.api.post("/api/v1/upstreams", json=stdio_fixture("fx"))).status_code == 201
            assert (await r1.api.post("/api/v1/servers", json={"name": "vs", "tools": ["fx__echo"]})).status_code == 201
            created = await r1.api.post("/api/v1/tokens", json={"name": "agent", "servers": ["vs"]})
            secret = created.json()["token"]

            async def r2_serves_vs() -> bool:
                try:
                    return "result" in await r2.call_tool("vs", "fx__echo", {"text": "hi"}, token=secret)
                except AssertionError:  # a 404 problem (no JSON-RPC reply) until r2 has heard of vs
                    return False

            await eventually(r2_serves_vs, timeout=30)

            stop_redis()
            with anyio.fail_after(15):  # nothing hangs
                not_ready = await r1.api.get("/readyz")
                assert not_ready.status_code == 503
                assert any(p.startswith("redis unreachable") for p in not_ready.json()["problems"])
                refused = await r2.call_tool("vs", "fx__echo", {"text": "down"}, token=secret)
                assert refused["error"]["code"] == -32050
                assert refused["error"]["data"]["type"] == "ServiceUnavailable"
                # Configuration is in PostgreSQL: a change is still saved, and reaches the others later.
                patched = await r1.api.patch("/api/v1/servers/vs", json={"tools": ["fx__echo", "fx__add"]})
                assert patched.status_code == 200, patched.text
            assert r1.process.poll() is None and r2.process.poll() is None

            await start_redis()

            async def recovered() -> bool:
                ready = (await r1.api.get("/readyz")).status_code == 200
                shown = (await r2.api.get("/api/v1/servers/vs")).json()
                return ready and "fx__add" in shown["exposed"]["tools"]

            await eventually(recovered, timeout=30)
            assert "result" in await r2.call_tool("vs", "fx__add", {"a": 1, "b": 2}, token=secret)
