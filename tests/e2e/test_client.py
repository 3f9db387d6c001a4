"""bastion.client against a real Bastion: results, and every failure as its typed exception."""

from __future__ import annotations

import pytest

from bastion.client import BastionClient, BastionMcpClient, ToolResult
from bastion.client.facade import _server_url
from bastion.core.errors import Forbidden, InvalidArguments, NotFound, RateLimited, Unauthenticated, UnknownTool
from tests.e2e.test_policy import setup as policy_setup
from tests.harness import TOKEN, Running, stdio_fixture

pytestmark = pytest.mark.anyio


def test_a_server_url_may_be_given_in_any_of_its_forms() -> None:
    for url in ("http://h:1/servers/dev", "http://h:1/servers/dev/mcp", "http://h:1/api/v1/servers/dev/"):
        assert _server_url(url) == ("http://h:1", "dev")
    assert _server_url("https://h/prefix/servers/dev/sse") == ("https://h/prefix", "dev")
    with pytest.raises(ValueError):
        _server_url("http://h:1/api/v1/tools")


async def test_the_client_calls_tools_prompts_and_resources(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "upstreams": ["fx"]})
    async with BastionClient(gateway.mcp_url("vs"), TOKEN) as client:
        assert await client.call_tool("fx__add", {"a": 1, "b": 2}) == ToolResult(
            content=[{"type": "text", "text": "3"}], structured={"result": 3}, is_error=False
        )
        failed = await client.call_tool("fx__fail", {"message": "nope"})
        assert failed.is_error and "nope" in failed.text
        assert "fx__echo" in {t["name"] for t in await client.list_tools()}
        assert (await client.read_resource("fixture://static"))["contents"][0]["text"] == "static content"
        assert (await client.get_prompt("fx__greet", {"name": "ada"}))["messages"]
        assert (await client.openapi())["openapi"] == "3.1.0"

        with pytest.raises(InvalidArguments) as invalid:
            await client.call_tool("fx__add", {"a": "x", "b": 1})
        assert invalid.value.extra["errors"] == [{"pointer": "/a", "message": "'x' is not of type 'integer'"}]
        with pytest.raises(UnknownTool):
            await client.call_tool("fx__missing")
    async with BastionClient(f"{gateway.base_url}/servers/ghost", TOKEN) as client:
        with pytest.raises(NotFound):
            await client.call_tool("fx__echo", {"text": "x"})
    async with BastionClient(gateway.mcp_url("vs"), "bst_wrong") as client:
        with pytest.raises(Unauthenticated):
            await client.call_tool("fx__echo", {"text": "x"})


async def test_refusals_arrive_as_forbidden_and_rate_limited(gateway: Running) -> None:
    _, blocked = await policy_setup(gateway)
    async with BastionClient(gateway.mcp_url("vs"), blocked) as client:
        assert (await client.call_tool("fx__echo", {"text": "hi"})).text == "hi"
        with pytest.raises(Forbidden):
            await client.call_tool("fx__add", {"a": 1, "b": 2})
    await gateway.api.patch("/api/v1/servers/vs", json={"rate_limits": {"tools": {"fx__echo": "1/day"}}})
    async with BastionClient(gateway.mcp_url("vs"), blocked) as client:
        await client.call_tool("fx__echo", {"text": "hi"})
        with pytest.raises(RateLimited) as limited:
            await client.call_tool("fx__echo", {"text": "hi"})
        assert limited.value.retry_after >= 1


async def test_the_mcp_client_gives_the_same_results_and_errors(gateway: Running) -> None:
    _, blocked = await policy_setup(gateway)
    await gateway.api.patch("/api/v1/servers/vs", json={"rate_limits": {"tools": {"fx__echo": "1/day"}}})
    async with BastionMcpClient(gateway.mcp_url("vs"), blocked) as client:
        assert [t["name"] for t in await client.list_tools()] == ["fx__echo"]
        echoed = await client.call_tool("fx__echo", {"text": "hi"})
        assert echoed.text == "hi" and not echoed.is_error
        with pytest.raises(Forbidden):
            await client.call_tool("fx__add", {"a": 1, "b": 2})
        with pytest.raises(UnknownTool):
            await client.call_tool("fx__missing")
        with pytest.raises(RateLimited) as limited:
            await client.call_tool("fx__echo", {"text": "hi"})
        assert limited.value.retry_after >= 1
