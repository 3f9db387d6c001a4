"""Attack class: two Authorization headers. The REST API authenticated with the last copy while a
proxy in front may check the first: header confusion. The MCP endpoint already refused a request
naming more than one. Every entry point now refuses one at the edge, before anything reads a
credential: 400, a problem+json body saying so (on an MCP endpoint, a JSON-RPC error)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from tests.harness import TOKEN, Running, serve, settings_for, stdio_fixture

pytestmark = [pytest.mark.anyio, pytest.mark.database_free]

SCRAPE = "scrape-token-0123456789abcdef"
TWICE = [("authorization", "Bearer not-a-token"), ("authorization", f"Bearer {TOKEN}")]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("repeated-authorization")
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp}/b.db", metrics_token=SCRAPE)) as running:
        await running.register(stdio_fixture("fx"))
        await running.create_server({"name": "vs", "upstreams": ["fx"]})
        yield running


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/upstreams"),
        ("GET", "/api/v1/servers/vs/tools"),
        ("POST", "/api/v1/servers/vs/tools/fx__echo/call"),
        ("GET", "/metrics"),
        ("GET", "/admin/"),
        ("POST", "/token"),
        ("POST", "/revoke"),
    ],
)
async def test_a_second_authorization_header_is_refused(gateway: Running, method: str, path: str) -> None:
    headers = [*TWICE, ("content-type", "application/json")]
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        response = await http.request(method, path, headers=headers, content=b"{}")
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "more than one authorization header: send one", response.text


@pytest.mark.parametrize(("method", "tail"), [("POST", "mcp"), ("GET", "sse"), ("POST", "messages/?session_id=x")])
async def test_an_mcp_endpoint_says_it_as_a_json_rpc_error(gateway: Running, method: str, tail: str) -> None:
    headers = [*TWICE, ("accept", "application/json, text/event-stream"), ("content-type", "application/json")]
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        response = await http.request(method, f"/servers/vs/{tail}", headers=headers, content=b'{"jsonrpc":"2.0","id":1,"method":"ping"}')
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"] == "Bad Request: more than one authorization header", response.text


async def test_one_authorization_header_is_served(gateway: Running) -> None:
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        assert (await http.get("/api/v1/upstreams", headers=[TWICE[1]])).status_code == 200
        assert (await http.get("/metrics", headers=[("authorization", f"Bearer {SCRAPE}")])).status_code == 200
