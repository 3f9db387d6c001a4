"""An upstream's log messages for a call reach the client, at or above the level the client asked for."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from mcp.types import LoggingMessageNotificationParams

from tests.harness import HttpUpstream, Running, http_fixture, serve, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def http_upstream() -> Iterator[HttpUpstream]:
    with http_fixture("streamable-http") as running:
        yield running


@pytest.fixture(scope="module")
def sse_upstream() -> Iterator[HttpUpstream]:
    with http_fixture("sse") as running:
        yield running


@pytest.fixture(params=["streamable-http", "stdio", "sse"])
async def logged(
    request: pytest.FixtureRequest, http_upstream: HttpUpstream, sse_upstream: HttpUpstream, tmp_path: Path
) -> AsyncIterator[Running]:
    """Bastion in front of the fixture over each upstream transport: Bastion's own client for
    2026-07-28 HTTP, the SDK client in 2026-07-28 over stdio, and a 2025-11-25 session over SSE."""
    body = {
        "streamable-http": http_upstream.body("fx"),
        "sse": sse_upstream.body("fx"),
        "stdio": stdio_fixture("fx"),
    }[request.param]
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gateway:
        await gateway.register(body)
        await gateway.create_server({"name": "vs", "upstreams": ["fx"]})
        yield gateway


class Logs:
    def __init__(self) -> None:
        self.entries: list[LoggingMessageNotificationParams] = []

    async def __call__(self, params: LoggingMessageNotificationParams) -> None:
        self.entries.append(params)


async def test_legacy_client_gets_logs_with_or_without_a_level(logged: Running) -> None:
    logs = Logs()
    async with logged.client("vs", mode="legacy", logging_callback=logs) as client:
        await client.call_tool("fx__log", {"message": "before"})
        # No level set: as directly, a 2025-11-25 client gets what the upstream logs.
        assert [(e.level, e.data) for e in logs.entries] == [("info", "before")]
        await client.set_logging_level("info")
        result = await client.call_tool("fx__log", {"message": "hello"})
        assert result.content[0].text == "logged"
        assert [(e.level, e.data) for e in logs.entries] == [("info", "before"), ("info", "hello")]


async def test_legacy_client_below_the_level_gets_nothing(logged: Running) -> None:
    logs = Logs()
    async with logged.client("vs", mode="legacy", logging_callback=logs) as client:
        await client.set_logging_level("error")
        await client.call_tool("fx__log", {"message": "quiet"})
        assert logs.entries == []


async def test_modern_client_gets_logs_it_opted_into(logged: Running) -> None:
    logs = Logs()
    async with logged.client("vs", mode="2026-07-28", logging_callback=logs, log_level="info") as client:
        result = await client.call_tool("fx__log", {"message": "hi there"})
        assert result.content[0].text == "logged"
        assert [(e.level, e.data) for e in logs.entries] == [("info", "hi there")]


async def test_modern_client_without_opt_in_gets_no_logs(logged: Running) -> None:
    logs = Logs()
    async with logged.client("vs", mode="2026-07-28", logging_callback=logs) as client:
        await client.call_tool("fx__log", {"message": "unasked"})
        assert logs.entries == []
