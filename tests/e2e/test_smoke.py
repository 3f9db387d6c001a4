"""The shortest path through everything: register a stdio upstream, compose, call in both eras."""

from __future__ import annotations

import pytest

from tests.harness import Running, stdio_fixture

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
