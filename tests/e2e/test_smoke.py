"""The shortest path through everything: register a stdio upstream, compose, call in both eras."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness import Running, serve, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_tool_call_through_virtual_server(gateway: Running, mode: str) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "smoke", "upstreams": ["fx"]})
    async with gateway.client("smoke", mode=mode) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        assert "fx__echo" in names
        result = await client.call_tool("fx__echo", {"text": "hi"})
        assert result.content[0].text == "hi"
        assert client.server_info is None or client.server_info.name == "bastion"


async def test_an_oversized_mcp_request_is_refused_with_413(tmp_path: Path) -> None:
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", max_body_bytes=1000)) as gateway:
        await gateway.register(stdio_fixture("fx"))
        await gateway.create_server({"name": "small", "upstreams": ["fx"]})
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "fx__echo", "arguments": {"text": "x" * 5000}}}
        headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}
        content = json.dumps(body).encode()

        async def streamed() -> AsyncIterator[bytes]:
            yield content  # no Content-Length: the limit must hold for chunked bodies too

        for payload in (content, streamed()):
            response = await gateway.api.post(gateway.mcp_url("small"), content=payload, headers=headers)
            assert response.status_code == 413
            assert response.json()["error"]["code"] == -32600
