"""Per-tool policy on a virtual server: callers see and use only what its rules allow them, in
both protocol eras, and a denied call says it is forbidden rather than unknown."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import MCPError

from bastion.core.errors import Forbidden, UnknownTool
from tests.e2e.test_token_scopes import create_token
from tests.harness import Running, stdio_fixture
from tests.rest.test_upstreams_api import assert_problem

pytestmark = pytest.mark.anyio


def policy(blocked_token: str) -> dict[str, Any]:
    return {
        "rules": [
            {"effect": "deny", "tokens": [blocked_token], "tools": ["fx__add"]},
            {"effect": "allow", "roles": ["admin"], "tools": ["*"], "prompts": ["*"], "resources": ["*"]},
            {"effect": "allow", "tools": ["fx__echo", "fx__add"], "resources": ["fixture://static"]},
        ]
    }


async def setup(gateway: Running) -> tuple[str, str]:
    """A server `vs` over the fixture, and two tokens: `open` gets the shared rules, `blocked` less."""
    await gateway.register(stdio_fixture("fx"))
    opened = await create_token(gateway, servers="*")
    blocked = await create_token(gateway, servers="*")
    await gateway.create_server({"name": "vs", "upstreams": ["fx"], "policy": policy(blocked["id"])})
    return opened["token"], blocked["token"]


async def _denied(call: Any) -> int:
    with pytest.raises(MCPError) as caught:
        await call
    return caught.value.error.code


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_lists_show_each_caller_only_what_the_policy_allows_it(gateway: Running, mode: str) -> None:
    opened, blocked = await setup(gateway)
    async with gateway.client("vs", mode=mode) as admin:
        assert {"fx__echo", "fx__add", "fx__whoami"} <= {t.name for t in (await admin.list_tools()).tools}
        assert [p.name for p in (await admin.list_prompts()).prompts] == ["fx__greet"]
    async with gateway.client("vs", mode=mode, token=opened) as client:
        assert sorted(t.name for t in (await client.list_tools()).tools) == ["fx__add", "fx__echo"]
        assert (await client.list_prompts()).prompts == []
        assert [str(r.uri) for r in (await client.list_resources()).resources] == ["fixture://static"]
        assert (await client.list_resource_templates()).resource_templates == []
    async with gateway.client("vs", mode=mode, token=blocked) as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["fx__echo"]


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_a_denied_call_is_forbidden_and_an_unknown_one_is_unknown(gateway: Running, mode: str) -> None:
    opened, blocked = await setup(gateway)
    async with gateway.client("vs", mode=mode, token=blocked) as client:
        assert (await client.call_tool("fx__echo", {"text": "hi"})).content[0].text == "hi"
        assert await _denied(client.call_tool("fx__add", {"a": 1, "b": 2})) == Forbidden.jsonrpc_code
        assert await _denied(client.call_tool("fx__whoami", {})) == Forbidden.jsonrpc_code
        assert await _denied(client.call_tool("fx__nope", {})) == UnknownTool.jsonrpc_code
    async with gateway.client("vs", mode=mode, token=opened) as client:
        assert (await client.call_tool("fx__add", {"a": 1, "b": 2})).structured_content == {"result": 3}
        assert await _denied(client.get_prompt("fx__greet", {"name": "x"})) == Forbidden.jsonrpc_code
        assert (await client.read_resource("fixture://static")).contents[0].text == "static content"
        assert await _denied(client.read_resource("fixture://items/7")) == Forbidden.jsonrpc_code


async def test_a_denied_resource_cannot_be_subscribed_to(gateway: Running) -> None:
    opened, _ = await setup(gateway)
    async with gateway.client("vs", token=opened) as client:
        assert await _denied(client.subscribe_resource("fixture://items/7")) == Forbidden.jsonrpc_code


async def test_changing_the_policy_takes_effect_on_the_next_request(gateway: Running) -> None:
    _, blocked = await setup(gateway)
    async with gateway.client("vs", token=blocked) as client:
        assert await _denied(client.call_tool("fx__add", {"a": 1, "b": 1})) == Forbidden.jsonrpc_code
        response = await gateway.api.patch("/api/v1/servers/vs", json={"policy": {"default": "allow"}})
        assert response.status_code == 200, response.text
        assert (await client.call_tool("fx__add", {"a": 1, "b": 1})).structured_content == {"result": 2}
        response = await gateway.api.patch("/api/v1/servers/vs", json={"policy": None})
        assert response.json()["policy"] is None
        assert "fx__whoami" in {t.name for t in (await client.list_tools()).tools}


async def test_the_policy_is_stored_and_shown(any_db_gateway: Running) -> None:
    await setup(any_db_gateway)
    await any_db_gateway.bastion.gateway.rebuild()  # from the database, not memory
    shown = (await any_db_gateway.api.get("/api/v1/servers/vs")).json()["policy"]
    assert shown["default"] == "deny"
    assert [r["effect"] for r in shown["rules"]] == ["deny", "allow", "allow"]
    assert shown["rules"][2]["tools"] == ["fx__echo", "fx__add"]


@pytest.mark.parametrize(
    "bad",
    [
        {"rules": [{"effect": "allow", "users": ["a"]}]},
        {"rules": [{"effect": "perhaps", "tools": ["*"]}]},
        {"rules": [{"effect": "allow", "roles": ["root"], "tools": ["*"]}]},
        {"default": "sometimes"},
        {"rules": "allow everything"},
    ],
)
async def test_a_malformed_policy_is_refused_and_nothing_changes(gateway: Running, bad: dict[str, Any]) -> None:
    await gateway.register(stdio_fixture("fx"))
    assert_problem(await gateway.api.post("/api/v1/servers", json={"name": "vs", "upstreams": ["fx"], "policy": bad}), 400)
    assert (await gateway.api.get("/api/v1/servers/vs")).status_code == 404
    await gateway.create_server({"name": "vs", "upstreams": ["fx"]})
    assert_problem(await gateway.api.patch("/api/v1/servers/vs", json={"policy": bad}), 400)
    assert (await gateway.api.get("/api/v1/servers/vs")).json()["policy"] is None
