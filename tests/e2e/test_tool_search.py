"""Progressive discovery: a virtual server with discovery "search" lists three meta-tools; searching
ranks the real tools (within the caller's policy) and call_tool calls one."""

from __future__ import annotations

import pytest
from mcp import MCPError

from tests.harness import Running, stdio_fixture

pytestmark = pytest.mark.anyio
POLICY = {"default": "allow", "rules": [{"effect": "deny", "tools": ["fx__crash"]}]}


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_an_agent_loads_three_tools_searches_and_calls_one(gateway: Running, mode: str) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "upstreams": ["fx"], "discovery": "search", "policy": POLICY})
    async with gateway.client("vs", mode=mode) as client:
        listed = [t.name for t in (await client.list_tools()).tools]
        assert listed == ["search_tools", "describe_tool", "call_tool"]

        found = (await client.call_tool("search_tools", {"query": "add two integers"})).structured_content
        assert found is not None
        top = found["tools"][0]
        assert top["name"] == "fx__add" and set(top["inputSchema"]["properties"]) == {"a", "b"} and top["score"] > 0
        crash = (await client.call_tool("search_tools", {"query": "kill process crash exit"})).structured_content
        assert crash is not None and "fx__crash" not in [t["name"] for t in crash["tools"]]

        described = (await client.call_tool("describe_tool", {"name": "fx__echo"})).structured_content
        assert described is not None and described["description"] == "Return the text unchanged."
        result = await client.call_tool("call_tool", {"name": "fx__add", "arguments": {"a": 2, "b": 3}})
        assert result.structured_content == {"result": 5}
        with pytest.raises(MCPError) as denied:
            await client.call_tool("call_tool", {"name": "fx__crash", "arguments": {}})
        assert denied.value.error.code == -32003
        with pytest.raises(MCPError) as hidden:
            await client.call_tool("describe_tool", {"name": "fx__crash"})
        assert "unknown tool" in hidden.value.error.message
