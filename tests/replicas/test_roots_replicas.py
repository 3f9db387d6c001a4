"""A 2025-11-25 caller's changed roots hold on every replica, not only the one its notice reached.

Behind a load balancer without stickiness the caller's session is served by any replica, so it can
have a server-filesystem process of its own on replica B while its `notifications/roots/list_changed`
reaches replica A. A tells its own processes and announces the change; B, which cannot ask the caller
outside a call, ends the caller's process there, and the caller's next call on B opens a new one,
which asks it for its roots: the directories it gave up are no longer allowed on B."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.test_third_party_servers import FILESYSTEM, Rooted, allowed_directories, allowed_once_asked
from tests.harness import TOKEN
from tests.replicas.cluster import replicas
from tests.replicas.test_kill_mid_stream import Balancer
from tests.replicas.test_replicas import known_everywhere

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.node]

A, B = 0, 1


class NoticeWatch(Balancer):
    """The balancer, saying when a replica has answered a POST (the client sends notices in the background)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.posted = {A: anyio.Event(), B: anyio.Event()}

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await super().handle_async_request(request)
        replica, method, _status = self.served[-1]
        if method == "POST":
            self.posted[replica].set()
        return response


async def test_a_callers_changed_roots_end_its_process_on_the_replica_the_notice_missed(tmp_path: Path) -> None:
    if not FILESYSTEM.exists():
        pytest.fail(f"{FILESYSTEM} is missing: run scripts/install-node-tools first")
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    async with replicas(2, tmp_path) as cluster:
        fs = {"name": "fs", "transport": "stdio", "command": "node", "args": [str(FILESYSTEM)], "isolation": "per_session"}
        assert (await cluster[A].api.post("/api/v1/upstreams", json=fs)).status_code == 201
        created = await cluster[A].api.post("/api/v1/servers", json={"name": "files", "upstreams": ["fs"]})
        assert created.status_code == 201, created.text
        await known_everywhere(cluster, "files")

        balancer = NoticeWatch(cluster)
        balancer.pinned = B
        http = httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=httpx2.Timeout(30.0, read=None), transport=balancer
        )
        caller = Rooted(first)
        url = f"{cluster[A].base_url}/servers/files/mcp"  # the port is the balancer's to choose
        async with Client(streamable_http_client(url, http_client=http), mode="legacy", list_roots_callback=caller.list_roots) as client:
            # The caller's own process on B, confined to its first roots.
            assert await allowed_once_asked(client, caller) == [str(first.resolve())]

            # The caller narrows its roots; the notice reaches A (which restores the session from the
            # shared store), never B.
            caller.directories, caller.asked = (second,), anyio.Event()
            balancer.pinned = A
            await client.send_roots_list_changed()
            with anyio.fail_after(10):
                await balancer.posted[A].wait()

            # Back on B: once B has heard, the caller's next call there runs on a new process that
            # asked for the new roots. Without that, B's process allows `first` for good.
            balancer.pinned = B
            moved = False
            with anyio.move_on_after(20):  # a guard, not a timing: replicas hear each other within ms
                while not moved:
                    moved = await allowed_directories(client) == [str(second.resolve())]
            assert moved, "replica B's process of the caller kept the roots the caller gave up"
            assert [method for replica, method, _status in balancer.served if replica == A] == ["POST"]
