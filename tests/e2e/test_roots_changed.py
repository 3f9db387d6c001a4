"""A 2025-11-25 caller's changed roots reach its own upstream session on HTTP and SSE upstreams
(stdio: tests/e2e/test_third_party_servers.py), as they reach the server directly: the upstream
(tests/upstreams/roots_server.py) is told `notifications/roots/list_changed`, asks `roots/list`
outside any call, and gets the caller's new roots."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import ListRootsResult, Root, TextContent

from tests.harness import ROOT, TEST_DATABASE, Running, serve, settings_for

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(TEST_DATABASE == "postgres", reason="transport variants run in the SQLite pass"),
]
ROOTS_SERVER = ROOT / "tests" / "upstreams" / "roots_server.py"
TRANSPORTS = ["streamable-http", "sse"]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, str]]:
    procs: dict[str, subprocess.Popen[str]] = {}
    urls: dict[str, str] = {}
    try:
        for transport in TRANSPORTS:
            proc = procs[transport] = subprocess.Popen(
                [sys.executable, str(ROOTS_SERVER), "--transport", transport], stdout=subprocess.PIPE, text=True
            )
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("READY "), line
            path = "/mcp" if transport == "streamable-http" else "/sse"
            urls[transport] = f"http://127.0.0.1:{line.split()[1]}{path}"
        yield urls
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
async def gateway(upstreams: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    db = tmp_path_factory.mktemp("roots-changed") / "b.db"
    async with serve(settings_for(f"sqlite+aiosqlite:///{db}")) as running:
        for transport, url in upstreams.items():
            name = transport.replace("-", "")
            await running.register({"name": name, "transport": transport, "url": url, "protocol": "2025-11-25"})
            await running.create_server({"name": name, "upstreams": [name], "prefix": "never"})
        yield running


class Rooted:
    def __init__(self, uri: str) -> None:
        self.uri = uri

    async def list_roots(self, _ctx: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=self.uri)])  # type: ignore[arg-type]


async def known_roots(client: Client) -> str:
    result = await client.call_tool("known_roots", {})
    assert result.is_error is not True and isinstance(result.content[0], TextContent), result.content
    return result.content[0].text


async def follows_roots(client: Client, caller: Rooted, moved: str) -> str:
    """What the server holds once the caller's roots changed to `moved` (it is told, then asks)."""
    assert await known_roots(client) != moved  # opens the session (through Bastion: the caller's own)
    caller.uri = moved
    await client.send_roots_list_changed()
    known, give_up = "", anyio.current_time() + 10  # a guard, not a timing: directly it asks within ms
    while known != moved and anyio.current_time() < give_up:
        known = await known_roots(client)  # never cut short: a call cancelled mid-way ends the client
    return known


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_changed_roots_reach_the_server_directly_and_through_bastion(
    gateway: Running, upstreams: dict[str, str], transport: str
) -> None:
    caller = Rooted("file:///work/first")
    if transport == "streamable-http":
        async with Client(upstreams[transport], mode="legacy", list_roots_callback=caller.list_roots) as direct:
            assert await follows_roots(direct, caller, "file:///work/direct") == "file:///work/direct"
    caller.uri = "file:///work/first"
    name = transport.replace("-", "")
    async with gateway.client(name, mode="legacy", list_roots_callback=caller.list_roots) as client:
        assert await follows_roots(client, caller, "file:///work/bastion") == "file:///work/bastion"
