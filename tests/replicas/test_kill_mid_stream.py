"""A 2025-11-25 client behind a load balancer with no stickiness keeps its session when a replica
is SIGKILLed in the middle of one of its streams: what completed before stays completed, and the
session goes on, under the same id, on the surviving replicas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.harness import TOKEN, stdio_fixture
from tests.replicas.cluster import Replica, replicas
from tests.replicas.test_replicas import known_everywhere

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


class _Watched(httpx2.AsyncByteStream):
    """A response body that says when its first bytes arrived (the SSE priming event)."""

    def __init__(self, inner: httpx2.AsyncByteStream, first_bytes: anyio.Event) -> None:
        self._inner = inner
        self._first = first_bytes

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            if chunk:
                self._first.set()
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class Balancer(httpx2.AsyncBaseTransport):
    """Round robin over the replicas, skipping one that refuses connections (as a load balancer's
    health check would), or to one replica when pinned. Remembers who served what."""

    def __init__(self, replicas: list[Replica]) -> None:
        self._ports = [r.port for r in replicas]
        self._inner = httpx2.AsyncHTTPTransport()
        self._next = 0
        self.dead: set[int] = set()
        self.pinned: int | None = None
        self.served: list[tuple[int, str, int]] = []
        self.sessions: set[str] = set()
        """Every Mcp-Session-Id the client sent."""
        self.pinned_stream_started = anyio.Event()
        """Set once a pinned POST's event stream has sent its first bytes."""

    def _choose(self) -> int:
        if self.pinned is not None:
            return self.pinned
        for _ in self._ports:
            replica, self._next = self._next, (self._next + 1) % len(self._ports)
            if replica not in self.dead:
                return replica
        raise httpx2.ConnectError("no replica is alive")

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if "mcp-session-id" in request.headers:
            self.sessions.add(request.headers["mcp-session-id"])
        while True:
            replica = self._choose()
            request.url = request.url.copy_with(port=self._ports[replica])
            try:
                response = await self._inner.handle_async_request(request)
            except httpx2.ConnectError:
                if self.pinned is not None:
                    raise
                self.dead.add(replica)  # the next replica in turn gets the request instead
                continue
            break
        self.served.append((replica, request.method, response.status_code))
        streaming = response.headers.get("content-type", "").startswith("text/event-stream")
        if self.pinned is not None and request.method == "POST" and streaming:
            assert isinstance(response.stream, httpx2.AsyncByteStream)
            response.stream = _Watched(response.stream, self.pinned_stream_started)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_a_legacy_session_survives_a_replica_killed_mid_stream(tmp_path: Path) -> None:
    async with replicas(3, tmp_path) as cluster:
        r1 = cluster[0]
        assert (await r1.api.post("/api/v1/upstreams", json=stdio_fixture("fx"))).status_code == 201
        assert (await r1.api.post("/api/v1/servers", json={"name": "vs", "upstreams": ["fx"]})).status_code == 201
        await known_everywhere(cluster, "vs")

        balancer = Balancer(cluster)
        http = httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=httpx2.Timeout(30.0, read=None), transport=balancer
        )
        url = f"{r1.base_url}/servers/vs/mcp"  # the port is the balancer's to choose
        completed: dict[str, str] = {}
        async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
            for i in range(6):  # round robin: every replica serves some of these
                result = await client.call_tool("fx__echo", {"text": f"before {i}"})
                completed[f"before {i}"] = result.content[0].text
            victim = 1
            outcome: dict[str, object] = {}

            async def progress(_progress: float, _total: float | None, _message: str | None) -> None:
                pass

            async def doomed_call() -> None:
                # A progress callback keeps the call on the SDK path: an SSE stream held by the victim.
                try:
                    outcome["result"] = await client.call_tool("fx__slow", {"seconds": 120}, progress_callback=progress)
                except Exception as exc:
                    outcome["error"] = exc

            async with anyio.create_task_group() as tg:
                balancer.pinned = victim
                tg.start_soon(doomed_call)
                with anyio.fail_after(20):
                    await balancer.pinned_stream_started.wait()
                balancer.pinned = None
                cluster[victim].kill()  # SIGKILL in the middle of the call's stream
                killed_at = len(balancer.served)

                for i in range(6):  # the same session goes on through the survivors
                    with anyio.fail_after(30):
                        result = await client.call_tool("fx__echo", {"text": f"after {i}"})
                    assert result.content[0].text == f"after {i}"
                with anyio.fail_after(30):
                    tools = await client.list_tools()
                assert "fx__echo" in {t.name for t in tools.tools}
                # The call the victim was running died with it: it never reports a success.
                assert "result" not in outcome
                tg.cancel_scope.cancel()

        assert completed == {f"before {i}": f"before {i}" for i in range(6)}
        assert len(balancer.sessions) == 1  # one session id, before and after the kill
        assert balancer.dead == {victim}
        assert {replica for replica, method, _ in balancer.served[:killed_at] if method == "POST"} == {0, 1, 2}
        after_kill = [(replica, method) for replica, method, status in balancer.served[killed_at:] if status == 200]
        assert {replica for replica, method in after_kill if method == "POST"} == {0, 2}
        await http.aclose()
