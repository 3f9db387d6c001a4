"""Finding F2 (class: one caller exhausts what every caller shares): one token's `initialize`
requests filled a virtual server's table of 2025-11-25 sessions (10,000, idle for 30 minutes each),
and everyone else's `initialize` got 503. Now each caller (its user, else its token) holds at most
BASTION_MCP_SESSIONS_PER_CALLER sessions on a replica, across servers and including sessions
restored from the shared store; at its bound its own least recently used idle session is closed
(404 on it), or, with every one in use, it is told so (429); nobody else notices."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from bastion.core.errors import TooManyRequests
from tests.e2e.test_token_scopes import create_token
from tests.harness import (
    Running,
    open_raw_session,
    postgres_database,
    serve,
    session_headers,
    settings_for,
    stdio_fixture,
)

pytestmark = pytest.mark.anyio

PING = {"jsonrpc": "2.0", "id": 7, "method": "ping"}
REDIS_URL = "redis://127.0.0.1:6379/0"


@asynccontextmanager
async def gateway_with(database: str, per_caller: int, per_server: int, **extra: Any) -> AsyncIterator[Running]:
    settings = settings_for(database, mcp_sessions_per_caller=per_caller, mcp_sessions_per_server=per_server, **extra)
    async with serve(settings) as running:
        yield running


async def forget_prefix(prefix: str) -> None:
    redis = Redis.from_url(REDIS_URL)
    names = [k async for k in redis.scan_iter(match=f"{prefix}:*")]
    if names:
        await redis.delete(*names)
    await redis.aclose()


async def two_servers(running: Running) -> None:
    await running.register(stdio_fixture("fx"))
    for name in ("vs", "other"):
        await running.create_server({"name": name, "upstreams": ["fx"], "visibility": "public"})


async def ping(http: httpx2.AsyncClient, url: str, token: str, session_id: str) -> int:
    return (await http.post(url, headers=session_headers(session_id, token), json=PING)).status_code


async def initialize(http: httpx2.AsyncClient, url: str, token: str) -> httpx2.Response:
    params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}
    return await http.post(url, headers=session_headers(token=token), json=body)


async def calls_a_tool(running: Running, server: str, token: str) -> None:
    """A real SDK client of `token` initializes on `server` and calls a tool."""
    async with running.client(server, token=token) as client:
        result = await client.call_tool("fx__echo", {"text": "still served"})
        assert result.content[0].text == "still served"  # type: ignore[union-attr]


async def test_one_caller_past_its_bound_does_not_stop_another_from_opening_and_calling(tmp_path: Path) -> None:
    async with gateway_with(f"sqlite+aiosqlite:///{tmp_path}/b.db", 3, 4) as running:
        await two_servers(running)
        alice = (await create_token(running, servers="*"))["token"]
        bob = (await create_token(running, servers="*"))["token"]
        with anyio.fail_after(60):
            async with httpx2.AsyncClient(timeout=30) as http:
                # Alice opens more sessions than her bound (and than the server's), on both servers.
                opened = [await open_raw_session(http, running.mcp_url(vs), token=alice) for vs in ["vs", "other"] * 4]
                live = [sid for sid, vs in zip(opened, ["vs", "other"] * 4) if await ping(http, running.mcp_url(vs), alice, sid) == 200]
                assert live == opened[-3:]  # her bound counts every server together
            await calls_a_tool(running, "vs", bob)
            await calls_a_tool(running, "other", bob)


async def test_the_callers_least_recently_used_idle_session_is_the_one_closed(tmp_path: Path) -> None:
    async with gateway_with(f"sqlite+aiosqlite:///{tmp_path}/b.db", 3, 10) as running:
        await two_servers(running)
        alice = (await create_token(running, servers="*"))["token"]
        url = running.mcp_url("vs")
        with anyio.fail_after(60):
            async with httpx2.AsyncClient(timeout=30) as http:
                first, second, third = [await open_raw_session(http, url, token=alice) for _ in range(3)]
                assert await ping(http, url, alice, first) == 200  # `second` is now the least recently used
                fourth = await open_raw_session(http, url, token=alice)
                assert await ping(http, url, alice, second) == 404
                for session_id in (first, third, fourth):
                    assert await ping(http, url, alice, session_id) == 200
                # Closed for good; the next session she opens closes the next least recently used.
                assert await ping(http, url, alice, second) == 404
                await open_raw_session(http, url, token=alice)
                assert await ping(http, url, alice, first) == 404
                assert await ping(http, url, alice, third) == 200


async def test_a_request_that_opens_no_session_closes_none_of_the_callers(tmp_path: Path) -> None:
    async with gateway_with(f"sqlite+aiosqlite:///{tmp_path}/b.db", 2, 10) as running:
        await two_servers(running)
        alice = (await create_token(running, servers="*"))["token"]
        url = running.mcp_url("vs")
        with anyio.fail_after(60):
            async with httpx2.AsyncClient(timeout=30) as http:
                sessions = [await open_raw_session(http, url, token=alice) for _ in range(2)]
                no_session = await http.post(url, headers=session_headers(token=alice), json=PING)
                assert no_session.status_code == 400  # not an `initialize`: nothing was opened
                for session_id in sessions:
                    assert await ping(http, url, alice, session_id) == 200


async def test_a_bound_reached_with_every_session_in_use_is_refused_clearly_and_only_for_that_caller(
    tmp_path: Path,
) -> None:
    async with gateway_with(f"sqlite+aiosqlite:///{tmp_path}/b.db", 2, 3) as running:
        await two_servers(running)
        alice = (await create_token(running, servers="*"))["token"]
        bob = (await create_token(running, servers="*"))["token"]
        url = running.mcp_url("vs")
        with anyio.fail_after(60):
            async with httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=None)) as http, AsyncExitStack() as streams:
                sessions = [await open_raw_session(http, url, token=alice) for _ in range(2)]
                for session_id in sessions:  # each session's GET stream open: in use, not idle
                    stream = await streams.enter_async_context(
                        http.stream("GET", url, headers={**session_headers(session_id, alice), "Accept": "text/event-stream"})
                    )
                    assert stream.status_code == 200
                refused = await initialize(http, url, alice)
                assert refused.status_code == TooManyRequests.http_status
                error = refused.json()["error"]
                assert error["code"] == TooManyRequests.jsonrpc_code
                assert "at most 2" in error["message"]
                for session_id in sessions:
                    assert await ping(http, url, alice, session_id) == 200  # nothing of hers was closed
                await calls_a_tool(running, "vs", bob)
                await calls_a_tool(running, "other", bob)


async def test_a_caller_bound_must_stay_below_the_server_bound() -> None:
    with pytest.raises(ValidationError, match="MCP_SESSIONS_PER_CALLER"):
        settings_for("sqlite+aiosqlite:///:memory:", mcp_sessions_per_caller=10, mcp_sessions_per_server=10)


@pytest.mark.skipif("os.environ.get('BASTION_TEST_DATABASE') != 'postgres'", reason="needs PostgreSQL and Redis")
async def test_a_session_restored_from_the_shared_store_counts_against_its_callers_bound() -> None:
    async with postgres_database() as database, AsyncExitStack() as stack:
        prefix = f"bastion-test-{uuid.uuid4().hex[:12]}"
        stack.push_async_callback(forget_prefix, prefix)  # after the replicas stopped
        first = await stack.enter_async_context(gateway_with(database, 2, 10, redis_url=REDIS_URL, redis_prefix=prefix))
        await two_servers(first)
        second = await stack.enter_async_context(gateway_with(database, 2, 10, redis_url=REDIS_URL, redis_prefix=prefix))
        alice = (await create_token(first, servers="*"))["token"]
        with anyio.fail_after(60):
            async with httpx2.AsyncClient(timeout=30) as http:
                on_first = await open_raw_session(http, first.mcp_url("vs"), token=alice)
                older, newer = [await open_raw_session(http, second.mcp_url("vs"), token=alice) for _ in range(2)]
                # The first replica's session, served by the second, is restored there and counts.
                assert await ping(http, second.mcp_url("vs"), alice, on_first) == 200
                assert await ping(http, second.mcp_url("vs"), alice, older) == 404
                assert await ping(http, first.mcp_url("vs"), alice, older) == 404  # its record is gone too
                assert await ping(http, second.mcp_url("vs"), alice, newer) == 200
