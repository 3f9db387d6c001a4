"""Rate limits on one replica (in-process counters): a server's own limits over REST, refused calls
as JSON-RPC errors carrying retry-after, and 429 + Retry-After for HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import MCPError

from bastion.core.errors import RateLimited
from bastion.web.errors import problem_from
from tests.harness import Running, serve, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio


async def test_a_server_carries_its_own_limits_and_they_are_validated(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    limits = {"server": "100/minute", "token": "10/minute", "tools": {"fx__echo": "2/second"}}
    created = await gateway.create_server({"name": "vs", "tools": ["fx__echo"], "rate_limits": limits})
    assert created["rate_limits"] == limits
    assert (await gateway.api.get("/api/v1/servers/vs")).json()["rate_limits"] == limits

    for bad in ({"token": "lots"}, {"tools": {"fx__echo": "1/fortnight"}}, {"tokens": "1/minute"}, "1/minute"):
        refused = await gateway.api.patch("/api/v1/servers/vs", json={"rate_limits": bad})
        assert refused.status_code == 400, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    unknown = await gateway.api.patch("/api/v1/servers/vs", json={"rate_limits": {"tools": {"fx__add": "1/second"}}})
    assert unknown.status_code == 400  # fx__add is not on this server

    cleared = await gateway.api.patch("/api/v1/servers/vs", json={"rate_limits": None})
    assert cleared.status_code == 200 and cleared.json()["rate_limits"] is None


async def test_a_tool_limit_refuses_the_call_past_it_with_retry_after(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    body = {"name": "vs", "tools": ["fx__echo", "fx__add"], "rate_limits": {"tools": {"fx__echo": "2/day"}}}
    await gateway.create_server(body)
    async with gateway.client("vs", mode="legacy") as client:
        for _ in range(2):
            assert not (await client.call_tool("fx__echo", {"text": "hi"})).is_error
        with pytest.raises(MCPError) as refused:
            await client.call_tool("fx__echo", {"text": "hi"})
        assert refused.value.code == RateLimited.jsonrpc_code
        assert refused.value.error.data["retry_after"] >= 1
        # Other tools, and lists, are not limited by it.
        assert (await client.call_tool("fx__add", {"a": 1, "b": 1})).structured_content == {"result": 2}
        assert {t.name for t in (await client.list_tools()).tools} == {"fx__echo", "fx__add"}


async def test_the_default_token_limit_counts_each_token_on_its_own(tmp_path: Path) -> None:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", rate_limit_token="1/day")
    async with serve(settings) as gateway:
        await gateway.register(stdio_fixture("fx"))
        await gateway.create_server({"name": "vs", "tools": ["fx__echo"]})
        secrets = []
        for name in ("a", "b"):
            created = await gateway.api.post("/api/v1/tokens", json={"name": name, "servers": ["vs"]})
            secrets.append(created.json()["token"])
        for secret in secrets:
            async with gateway.client("vs", mode="legacy", token=secret) as client:
                assert not (await client.call_tool("fx__echo", {"text": "1"})).is_error
                with pytest.raises(MCPError) as refused:
                    await client.call_tool("fx__echo", {"text": "2"})
                assert refused.value.code == RateLimited.jsonrpc_code


def test_a_rate_limited_http_answer_is_429_with_retry_after() -> None:
    response = problem_from(RateLimited("rate limit reached", retry_after=17))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "17"
    assert json.loads(bytes(response.body))["retry_after"] == 17


def test_a_malformed_default_limit_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", rate_limit_user="fast")
