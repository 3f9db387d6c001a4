"""Origin validation at Bastion's HTTP edge: a page from another origin must not drive a local
gateway (DNS rebinding), on the MCP endpoints and the REST API alike."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from tests.harness import Running, serve, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "origin-test", "version": "1"},
    },
}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
APP_ORIGIN = "https://app.example"


@pytest.fixture
async def gated(tmp_path: Path) -> AsyncIterator[Running]:
    """Bastion that also allows APP_ORIGIN, with the fixture upstream behind the virtual server `vs`."""
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/bastion.db", allowed_origins=(APP_ORIGIN,))
    async with serve(settings) as gateway:
        await gateway.register(stdio_fixture("fx"))
        await gateway.create_server({"name": "vs", "upstreams": ["fx"]})
        yield gateway


async def initialize(gateway: Running, headers: dict[str, str]) -> httpx2.Response:
    return await gateway.api.post(gateway.mcp_url("vs"), json=INITIALIZE, headers={**MCP_HEADERS, **headers})


async def list_upstreams(gateway: Running, headers: dict[str, str]) -> httpx2.Response:
    return await gateway.api.get("/api/v1/upstreams", headers=headers)


def assert_forbidden(response: httpx2.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 403
    assert "Origin" in problem["detail"]


def initialized(response: httpx2.Response) -> dict[str, object]:
    """The initialize result, from a JSON body or the SSE event that carries it (after any priming event)."""
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        return next(json.loads(d)["result"] for d in data if d)
    return response.json()["result"]


REJECTED = [
    "https://evil.example",
    "http://localhost.evil.example",  # a local-looking name under someone else's domain
    "null",  # sandboxed frames and file: pages
]


@pytest.mark.parametrize("origin", REJECTED)
async def test_a_foreign_origin_is_refused_on_mcp_and_rest(gated: Running, origin: str) -> None:
    assert_forbidden(await initialize(gated, {"origin": origin}))
    assert_forbidden(await list_upstreams(gated, {"origin": origin}))
    response = await gated.api.get(f"{gated.base_url}/servers/vs/sse", headers={"origin": origin})
    assert_forbidden(response)


async def test_a_foreign_origin_is_refused_before_authentication(gated: Running) -> None:
    async with httpx2.AsyncClient(base_url=gated.base_url) as anonymous:
        response = await anonymous.get("/api/v1/upstreams", headers={"origin": "https://evil.example"})
    assert_forbidden(response)


@pytest.mark.parametrize(
    "headers",
    [{}, {"origin": "http://localhost:3000"}, {"origin": "http://127.0.0.1:8080"}, {"origin": APP_ORIGIN}],
    ids=["no-origin", "localhost", "loopback-ip", "allowed-origin"],
)
async def test_local_and_allowed_origins_are_accepted(gated: Running, headers: dict[str, str]) -> None:
    result = initialized(await initialize(gated, headers))
    assert result["serverInfo"]["name"] == "bastion"  # type: ignore[index]
    listed = await list_upstreams(gated, headers)
    assert listed.status_code == 200, listed.text
    assert [u["name"] for u in listed.json()["items"]] == ["fx"]


async def test_an_allowed_origin_is_matched_exactly(gated: Running) -> None:
    for origin in ("http://app.example", "https://app.example.evil.example", "https://sub.app.example"):
        assert_forbidden(await list_upstreams(gated, {"origin": origin}))


async def test_without_allowed_origins_only_local_origins_pass(gateway: Running) -> None:
    """The default settings allow no extra origins."""
    assert_forbidden(await gateway.api.get("/api/v1/upstreams", headers={"origin": APP_ORIGIN}))
    response = await gateway.api.get("/api/v1/upstreams", headers={"origin": "http://localhost:3000"})
    assert response.status_code == 200, response.text
