"""Which caller started an A2A task is known to every replica: a task started on one replica is
refused to another user on a second one, and goes on for its own user there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.replicas.cluster import replicas
from tests.replicas.test_replicas import known_everywhere
from tests.replicas.test_sign_in_state import add_user, sign_in

pytest.importorskip("a2a", reason="the a2a-sdk test dependency is not installed")
from tests.e2e.test_a2a_upstream import agent  # noqa: F401 - the fixture
from tests.upstreams.a2a_agent import AGENT_TOKEN

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def test_a_task_started_on_one_replica_is_its_callers_on_every_replica(tmp_path: Path, agent: Any) -> None:
    base, seen = agent
    async with replicas(2, tmp_path) as (r1, r2):
        body = {
            "name": "agent",
            "transport": "a2a",
            "url": f"{base}/.well-known/agent-card.json",
            "auth": {"type": "bearer", "token": AGENT_TOKEN},
        }
        assert (await r1.api.post("/api/v1/upstreams", json=body)).status_code == 201
        created = await r1.api.post("/api/v1/servers", json={"name": "vs", "upstreams": ["agent"], "visibility": "public"})
        assert created.status_code == 201, created.text
        await known_everywhere((r1, r2), "vs")
        tokens = {}
        for name in ("alice", "bob"):
            await add_user(r1, f"{name}@example.com")
            tokens[name] = (await sign_in(r1, f"{name}@example.com")).json()["token"]

        asked = await r1.call_tool("vs", "agent__ask", {"message": "ask me"}, token=tokens["alice"])
        waiting = asked["result"]["structuredContent"]
        assert waiting["state"] == "TASK_STATE_INPUT_REQUIRED"
        reached = len(seen["authorization"])
        theirs = await r2.call_tool("vs", "agent__ask", {"message": "bob", "task_id": waiting["task_id"]}, token=tokens["bob"])
        made_up = await r2.call_tool("vs", "agent__ask", {"message": "bob", "task_id": "made-up"}, token=tokens["bob"])
        assert "error" in theirs, theirs
        assert theirs["error"] == made_up["error"] and theirs["error"]["code"] == -32602
        assert len(seen["authorization"]) == reached  # the agent never heard of Bob's attempt

        answered = await r2.call_tool("vs", "agent__ask", {"message": "alice", "task_id": waiting["task_id"]}, token=tokens["alice"])
        assert answered["result"]["content"][0]["text"] == "ALICE", answered
