"""Every response carries the security headers, whatever answered it; a response's own are kept."""

from __future__ import annotations

import httpx2
import pytest

from tests.harness import TOKEN, Running, stdio_fixture

pytestmark = pytest.mark.anyio

EXPECTED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "h", "version": "1"}},
}


def assert_secured(response: httpx2.Response) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, (name, response.request.url)
    assert "strict-transport-security" not in response.headers  # plain http on loopback


async def test_rest_probes_errors_and_mcp_answers_carry_security_headers(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "upstreams": ["fx"]})
    mcp_headers = {"accept": "application/json, text/event-stream", "authorization": f"Bearer {TOKEN}"}
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        responses = [
            await http.get("/healthz"),
            await http.get("/api/v1/tools"),  # 401 problem
            await gateway.api.get("/api/v1/tools"),
            await gateway.api.get("/api/v1/nothing-here"),
            await http.post("/servers/vs/mcp", json=INITIALIZE, headers=mcp_headers),
        ]
    for response in responses:
        assert_secured(response)
    assert responses[2].headers["cache-control"] == "no-store"


async def test_an_event_stream_keeps_its_own_cache_control(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "upstreams": ["fx"]})
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        headers = {"accept": "text/event-stream", "authorization": f"Bearer {TOKEN}"}
        async with http.stream("GET", "/servers/vs/sse", headers=headers) as stream:
            assert stream.status_code == 200
            assert_secured(stream)
            assert len(stream.headers.get_list("cache-control")) == 1, "one cache-control, the stream's own"
