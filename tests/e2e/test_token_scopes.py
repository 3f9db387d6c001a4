"""Scoped API tokens on the MCP endpoints: a token reaches exactly its virtual servers, from its
allowed networks, until it expires or is revoked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import MCPError

from tests.harness import Running, serve, settings_for, stdio_fixture
from tests.rest.test_upstreams_api import assert_problem

pytestmark = pytest.mark.anyio

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "scopes", "version": "1"}},
}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


async def two_servers(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs1", "upstreams": ["fx"]})
    await gateway.create_server({"name": "vs2", "tools": ["fx__add"]})


async def create_token(gateway: Running, **body: Any) -> dict[str, Any]:
    response = await gateway.api.post("/api/v1/tokens", json={"name": "agent", **body})
    assert response.status_code == 201, response.text
    return response.json()


async def initialize(gateway: Running, server: str, secret: str) -> httpx2.Response:
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {secret}"}
    async with httpx2.AsyncClient(timeout=30) as client:
        return await client.post(gateway.mcp_url(server), json=INITIALIZE, headers=headers)


@pytest.fixture
async def scoped(tmp_path: Path) -> AsyncIterator[Running]:
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/bastion.db")) as gateway:
        await two_servers(gateway)
        yield gateway


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_a_token_calls_tools_through_its_server(any_db_gateway: Running, mode: str) -> None:
    await two_servers(any_db_gateway)
    secret = (await create_token(any_db_gateway, servers=["vs1"]))["token"]
    async with any_db_gateway.client("vs1", mode=mode, token=secret) as client:
        assert "fx__echo" in [t.name for t in (await client.list_tools()).tools]
        assert (await client.call_tool("fx__echo", {"text": "scoped"})).content[0].text == "scoped"


async def test_the_same_token_on_another_server_is_forbidden(scoped: Running) -> None:
    secret = (await create_token(scoped, servers=["vs1"]))["token"]
    assert (await initialize(scoped, "vs1", secret)).status_code == 200
    body = assert_problem(await initialize(scoped, "vs2", secret), 403)
    assert "vs2" in body["detail"] and body["missing"] == "server:vs2"
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx2.AsyncClient(base_url=scoped.base_url, headers=headers) as client:
        assert_problem(await client.get("/servers/vs2/sse"), 403)
        assert_problem(await client.post("/servers/vs2/messages?session_id=x", json=INITIALIZE), 403)
        # Not even whether a server exists is told to a token that may not use it.
        assert_problem(await client.post("/servers/nope/mcp", json=INITIALIZE), 403)


async def test_all_servers_token_reaches_every_server(scoped: Running) -> None:
    secret = (await create_token(scoped, servers="*"))["token"]
    async with scoped.client("vs2", token=secret) as client:
        assert (await client.call_tool("fx__add", {"a": 2, "b": 3})).structured_content == {"result": 5}
    assert (await initialize(scoped, "vs1", secret)).status_code == 200


async def test_a_read_only_token_cannot_use_mcp(scoped: Running) -> None:
    secret = (await create_token(scoped, servers="*", permissions=["read"]))["token"]
    body = assert_problem(await initialize(scoped, "vs1", secret), 403)
    assert body["missing"] == "permission:mcp"


async def test_an_expired_token_is_unauthenticated(scoped: Running) -> None:
    secret = (await create_token(scoped, servers=["vs1"], expires_in=2))["token"]
    assert (await initialize(scoped, "vs1", secret)).status_code == 200
    with anyio.fail_after(10):
        while (response := await initialize(scoped, "vs1", secret)).status_code == 200:
            await anyio.sleep(0.1)
    assert "expired" in assert_problem(response, 401)["detail"]


async def test_a_revoked_token_is_refused_on_the_very_next_request(any_db_gateway: Running) -> None:
    await two_servers(any_db_gateway)
    created = await create_token(any_db_gateway, servers=["vs1"])
    async with any_db_gateway.client("vs1", token=created["token"]) as client:
        assert (await client.call_tool("fx__echo", {"text": "before"})).content[0].text == "before"
        response = await any_db_gateway.api.delete(f"/api/v1/tokens/{created['id']}")
        assert response.status_code == 204
        assert_problem(await initialize(any_db_gateway, "vs1", created["token"]), 401)
        with anyio.fail_after(10), pytest.raises(MCPError):  # how the SDK reports the HTTP 401
            await client.call_tool("fx__echo", {"text": "after"})


@pytest.mark.parametrize(("networks", "status"), [(["10.0.0.0/8"], 403), (["127.0.0.0/8"], 200), (["::1", "127.0.0.1"], 200)])
async def test_ip_allow(scoped: Running, networks: list[str], status: int) -> None:
    secret = (await create_token(scoped, servers=["vs1"], ip_allow=networks))["token"]
    response = await initialize(scoped, "vs1", secret)
    assert response.status_code == status, response.text
    if status == 403:
        assert "127.0.0.1" in assert_problem(response, 403)["detail"]
