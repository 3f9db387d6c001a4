"""An A2A agent sees one client, Bastion, so it cannot tell Bastion's callers apart: a caller who
learns another's task_id or context_id must not continue that task or speak in that conversation
through Bastion. The refusal for another's id is the one for an id nobody started (no oracle), and
it is Bastion's: the agent never hears of the attempt. A real agent (the a2a-sdk) behind a real
gateway, two signed-in users, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from mcp import MCPError

from tests.harness import Running
from tests.identity import login, make_user

pytest.importorskip("a2a", reason="the a2a-sdk test dependency is not installed")
from tests.e2e.test_a2a_upstream import agent  # noqa: F401 - the fixture
from tests.upstreams.a2a_agent import AGENT_TOKEN

pytestmark = pytest.mark.anyio
MADE_UP = "9a1c3f3e-7d2b-4c55-8e0f-2b6f1d3c4a5b"


async def setup(gateway: Running, base: str) -> dict[str, str]:
    """The agent behind a public virtual server, and two developers: their session tokens by name."""
    await gateway.register(
        {
            "name": "agent",
            "transport": "a2a",
            "url": f"{base}/.well-known/agent-card.json",
            "auth": {"type": "bearer", "token": AGENT_TOKEN},
        }
    )
    await gateway.create_server({"name": "vs", "upstreams": ["agent"], "visibility": "public"})
    tokens = {}
    for name in ("alice", "bob"):
        await make_user(gateway, f"{name}@example.com", "developer")
        tokens[name] = (await login(gateway, f"{name}@example.com")).json()["token"]
    return tokens


async def refusal(gateway: Running, token: str, tool: str, arguments: dict[str, Any]) -> tuple[int, str]:
    """The JSON-RPC error an MCP call gets (it must be refused)."""
    async with gateway.client("vs", mode="2026-07-28", token=token) as client:
        try:
            answered = await client.call_tool(tool, arguments)
        except MCPError as refused:
            return refused.error.code, refused.error.message
    pytest.fail(f"{tool} answered {answered.content}, not a refusal")


async def rest_refusal(gateway: Running, token: str, tool: str, arguments: dict[str, Any]) -> tuple[int, str, str]:
    """The problem a REST facade call gets (it must be refused)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(base_url=gateway.base_url, headers=headers, timeout=60) as api:
        response = await api.post(f"/api/v1/servers/vs/tools/{tool}", json=arguments)
    assert response.status_code != 200, response.text
    problem = response.json()
    return response.status_code, problem["title"], problem["detail"]


async def test_another_callers_task_or_conversation_is_refused_as_if_it_did_not_exist(
    any_db_gateway: Running, agent: Any
) -> None:
    gateway = any_db_gateway
    base, seen = agent
    tokens = await setup(gateway, base)
    async with gateway.client("vs", mode="2026-07-28", token=tokens["alice"]) as alice:
        asked = await alice.call_tool("agent__ask", {"message": "ask me"})
    waiting = asked.structured_content
    assert waiting["state"] == "TASK_STATE_INPUT_REQUIRED"
    theirs_task = {"message": "bob", "task_id": waiting["task_id"]}
    theirs_context = {"message": "what did alice say?", "context_id": waiting["context_id"]}
    reached = len(seen["authorization"])

    # Bob knows Alice's ids: he may neither answer her task nor speak in her conversation, over MCP
    # or REST, and each refusal is the one an id nobody started gets.
    bob = tokens["bob"]
    for tool in ("agent__ask", "agent__shout"):
        task_refused = await refusal(gateway, bob, tool, theirs_task)
        assert task_refused == await refusal(gateway, bob, tool, {"message": "bob", "task_id": MADE_UP})
        assert task_refused[0] == -32602 and "task_id" in task_refused[1]
        both = {**theirs_task, "context_id": waiting["context_id"]}
        assert await refusal(gateway, bob, tool, both) == task_refused
        context_refused = await refusal(gateway, bob, tool, theirs_context)
        assert context_refused == await refusal(gateway, bob, tool, {"message": "x", "context_id": MADE_UP})
        assert context_refused[0] == -32602 and "context_id" in context_refused[1]
        rest_refused = await rest_refusal(gateway, bob, tool, theirs_task)
        assert rest_refused == await rest_refusal(gateway, bob, tool, {"message": "bob", "task_id": MADE_UP})
        assert rest_refused[:2] == (404, "Unknown task")
        rest_context = await rest_refusal(gateway, bob, tool, theirs_context)
        assert rest_context == await rest_refusal(gateway, bob, tool, {"message": "x", "context_id": MADE_UP})
    assert len(seen["authorization"]) == reached  # none of it reached the agent

    # Alice's task is still hers and still waiting: she answers it, then goes on in her conversation.
    async with gateway.client("vs", mode="2026-07-28", token=tokens["alice"]) as alice:
        answered = await alice.call_tool("agent__ask", {"message": "alice", **{k: waiting[k] for k in ("task_id", "context_id")}})
        assert answered.content[0].text == "ALICE" and answered.structured_content["state"] == "TASK_STATE_COMPLETED"
        again = await alice.call_tool("agent__shout", {"message": "more", "context_id": waiting["context_id"]})
        assert again.content[0].text == "MORE" and again.structured_content["context_id"] == waiting["context_id"]


async def test_a_caller_cannot_pick_a_conversation_id_to_join_one(any_db_gateway: Running, agent: Any) -> None:
    """A2A lets a client name the contextId of a new message; through Bastion only an id an answer
    gave the caller is sent, or a caller could name one another caller's conversation has at the
    agent (started before Bastion held it, or since lapsed)."""
    gateway = any_db_gateway
    base, seen = agent
    tokens = await setup(gateway, base)
    reached = len(seen.get("authorization", ()))
    picked = await refusal(gateway, tokens["alice"], "agent__shout", {"message": "hi", "context_id": "my-own-context"})
    assert picked == await refusal(gateway, tokens["alice"], "agent__shout", {"message": "hi", "context_id": MADE_UP})
    assert len(seen.get("authorization", ())) == reached


async def test_every_credential_of_a_user_shares_their_tasks(any_db_gateway: Running, agent: Any) -> None:
    """A task is its user's, not one token's: Alice starts it signed in and answers it with an API
    token of hers; the admin (another caller) may not."""
    gateway = any_db_gateway
    base, _ = agent
    tokens = await setup(gateway, base)
    async with gateway.client("vs", mode="2026-07-28", token=tokens["alice"]) as alice:
        asked = await alice.call_tool("agent__ask", {"message": "ask me"})
    task = {"message": "ada", "task_id": asked.structured_content["task_id"]}
    headers = {"Authorization": f"Bearer {tokens['alice']}"}
    async with httpx2.AsyncClient(base_url=gateway.base_url, headers=headers, timeout=60) as api:
        created = await api.post("/api/v1/tokens", json={"name": "mine", "servers": ["vs"]})
    assert created.status_code == 201, created.text
    refused = await gateway.api.post("/api/v1/servers/vs/tools/agent__ask", json=task)
    assert refused.status_code == 404 and refused.json()["title"] == "Unknown task"
    async with gateway.client("vs", mode="2026-07-28", token=created.json()["token"]) as alice_api:
        answered = await alice_api.call_tool("agent__ask", task)
    assert answered.content[0].text == "ADA"
