"""A2A agents as upstreams: a real agent built with the official a2a-sdk, its skills as tools, over
MCP and the REST facade, with Bastion's own credential for the agent (never the caller's)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.types import ElicitResult

from tests.e2e.test_facade_async import ASYNC, events
from tests.harness import TOKEN, Running, serve, serve_asgi, settings_for

a2a_sdk = pytest.importorskip("a2a", reason="the a2a-sdk test dependency is not installed")
from tests.upstreams.a2a_agent import AGENT_TOKEN, build_app  # noqa: E402

pytestmark = pytest.mark.anyio


@pytest.fixture
async def agent() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    seen: dict[str, Any] = {}
    async with serve_asgi(build_app(seen)) as base:
        seen["base_url"] = base
        yield base, seen


async def register(gateway: Running, base: str, token: str = AGENT_TOKEN) -> dict[str, Any]:
    body = {
        "name": "agent",
        "transport": "a2a",
        "url": f"{base}/.well-known/agent-card.json",
        "auth": {"type": "bearer", "token": token},
    }
    registered = await gateway.register(body)
    await gateway.create_server({"name": "vs", "upstreams": ["agent"]})
    return registered


async def call(gateway: Running, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    response = await gateway.api.post(f"/api/v1/servers/vs/tools/{tool}", json=arguments)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_skills_are_listed_and_called_as_tools(gateway: Running, agent: Any) -> None:
    base, seen = agent
    registered = await register(gateway, base)
    assert registered["server_info"] == {"name": "Test agent", "version": "0.1.0"}
    assert sorted(registered["discovered"]["tools"]) == ["agent__ask", "agent__fail", "agent__shout"]
    catalog = (await gateway.api.get("/api/v1/tools", params={"q": "agent__"})).json()["items"]
    assert {t["name"] for t in catalog} >= {"agent__shout", "agent__ask"}
    async with gateway.client("vs", mode="2026-07-28") as client:
        shouted = await client.call_tool("agent__shout", {"message": "hello"})
        assert [c.text for c in shouted.content] == ["HELLO"] and not shouted.is_error
        assert shouted.structured_content["state"] == "TASK_STATE_COMPLETED"
    failed = await call(gateway, "agent__fail", {"message": "fail please"})
    assert failed["is_error"] and failed["content"][0]["text"] == "the agent could not do it"
    # Bastion's credential for the agent went along; the caller's token never did.
    assert set(seen["authorization"]) == {f"Bearer {AGENT_TOKEN}"}
    assert not any(TOKEN in value for value in seen["authorization"])


async def answer(_ctx: Any, params: Any) -> ElicitResult:
    assert params.message == "what is your name?"
    return ElicitResult(action="accept", content={"answer": "ada"})


async def test_a_task_that_needs_input_asks_the_caller_in_each_way_it_can_be_asked(gateway: Running, agent: Any) -> None:
    base, _ = agent
    await register(gateway, base)
    # A 2025-11-25 client is asked with an elicitation on its session, and the task goes on.
    async with gateway.client("vs", mode="legacy", elicitation_callback=answer) as client:
        done = await client.call_tool("agent__ask", {"message": "ask me"})
        assert [c.text for c in done.content] == ["ADA"]
    # A caller that cannot be asked gets the question and the task, and answers by calling again.
    async with gateway.client("vs", mode="2026-07-28") as client:
        asked = await client.call_tool("agent__ask", {"message": "ask me"})
        assert asked.content[0].text.startswith("what is your name?")
        waiting = asked.structured_content
        assert waiting["state"] == "TASK_STATE_INPUT_REQUIRED"
        arguments = {"message": "bob", "task_id": waiting["task_id"], "context_id": waiting["context_id"]}
        answered = await client.call_tool("agent__ask", arguments)
        assert answered.content[0].text == "BOB" and answered.structured_content["state"] == "TASK_STATE_COMPLETED"
    # Over REST: a plain call says to call asynchronously; an async call surfaces the question.
    plain = await gateway.api.post("/api/v1/servers/vs/tools/agent__ask", json={"message": "ask me"})
    assert plain.status_code == 409
    started = (await gateway.api.post("/api/v1/servers/vs/tools/agent__ask", json={"message": "ask"}, headers=ASYNC)).json()
    with anyio.fail_after(30):
        async for _name, question in events(gateway.api, started["events_url"], until="input_required"):
            pass
        assert question["params"]["message"] == "what is your name?"
        reply = {"action": "accept", "content": {"answer": "cy"}}
        assert (await gateway.api.post(f"{started['status_url']}/answer", json=reply)).status_code == 202
        async for _name, outcome in events(gateway.api, started["events_url"], until="result"):
            pass
    assert outcome["result"]["content"][0]["text"] == "CY"


async def test_a_wrong_agent_credential_is_an_upstream_error_not_a_leak(gateway: Running, agent: Any) -> None:
    base, _ = agent
    await register(gateway, base, token="wrong-token-0123")
    refused = await gateway.api.post("/api/v1/servers/vs/tools/agent__shout", json={"message": "x"})
    assert refused.status_code == 502 and "wrong-token" not in refused.text
    shown = (await gateway.api.get("/api/v1/upstreams/agent")).text
    assert "wrong-token" not in shown and AGENT_TOKEN not in shown


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_streaming_task_updates_arrive_as_progress(gateway: Running, agent: Any, mode: str) -> None:
    base, _ = agent
    await register(gateway, base)
    updates: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, _total: float | None, message: str | None) -> None:
        updates.append((progress, message))

    async with gateway.client("vs", mode=mode) as client:
        shouted = await client.call_tool("agent__shout", {"message": "quiet"}, progress_callback=on_progress)
    assert [c.text for c in shouted.content] == ["QUIET"]
    assert (1, "working on it") in updates and updates[-1][1] == "TASK_STATE_COMPLETED"
    started = (await gateway.api.post("/api/v1/servers/vs/tools/agent__shout", json={"message": "x"}, headers=ASYNC)).json()
    with anyio.fail_after(30):
        async for _name, outcome in events(gateway.api, started["events_url"], until="result"):
            pass
    assert outcome["progress"][0]["message"] == "working on it" and outcome["result"]["content"][0]["text"] == "X"


async def test_an_agent_endpoint_at_a_forbidden_address_is_refused(tmp_path: Path, agent: Any) -> None:
    """The card names where to send messages: that address obeys the SSRF rules too."""
    base, seen = agent
    settings = settings_for(
        f"sqlite+aiosqlite:///{tmp_path}/b.db", allow_private_upstreams=False, upstream_allowed_networks=("127.0.0.1/32",)
    )
    async with serve(settings) as gateway:
        seen["base_url"] = base.replace("127.0.0.1", "127.0.0.2")  # the card now points elsewhere on loopback
        await register(gateway, base)
        refused = await gateway.api.post("/api/v1/servers/vs/tools/agent__shout", json={"message": "x"})
        assert refused.status_code == 403 and refused.json()["title"] == "Upstream address refused"
    assert "authorization" not in seen  # nothing was sent to the agent
