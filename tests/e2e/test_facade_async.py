"""Long facade calls: `Prefer: respond-async` answers 202 with a status URL; progress is readable
there and as Server-Sent Events; a question the tool asks mid-call can be answered there."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests.e2e.test_bridge import asking_url  # noqa: F401 - the module-scoped asking upstream
from tests.e2e.test_token_scopes import create_token
from tests.harness import Running, serve, settings_for, stdio_fixture
from tests.rest.test_upstreams_api import assert_problem

pytestmark = pytest.mark.anyio
ASYNC = {"Prefer": "respond-async"}


async def events(api: httpx2.AsyncClient, url: str, until: str) -> AsyncIterator[tuple[str, Any]]:
    """The call's events, as (name, data), up to and including the first named `until`."""
    async with api.stream("GET", url) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        name = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                yield name, json.loads(line[6:])
                if name == until:
                    return


async def test_an_async_call_reports_progress_and_its_result(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "upstreams": ["fx"]})
    started = await gateway.api.post("/api/v1/servers/vs/tools/fx__progress", json={"steps": 3}, headers=ASYNC)
    assert started.status_code == 202, started.text
    assert started.headers["preference-applied"] == "respond-async"
    status_url = started.headers["location"]
    seen: list[tuple[str, Any]] = []
    with anyio.fail_after(30):
        async for event in events(gateway.api, started.json()["events_url"], until="result"):
            seen.append(event)
    progress = [data for name, data in seen if name == "progress"]
    assert [p["progress"] for p in progress] == [1, 2, 3] and progress[-1]["message"] == "step 3/3"
    final = (await gateway.api.get(status_url)).json()
    assert final["state"] == "completed" and final["result"]["content"][0]["text"] == "ok"
    assert len(final["progress"]) == 3


async def test_a_question_asked_mid_call_is_surfaced_and_answered(asking_url: str, tmp_path: Path) -> None:
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gateway:
        await gateway.register({"name": "ask", "transport": "sse", "url": asking_url})
        await gateway.create_server({"name": "vs", "upstreams": ["ask"]})
        plain = await gateway.api.post("/api/v1/servers/vs/tools/ask__ask_name", json={})
        # A plain call declares nothing it could answer, so the upstream does not ask it: its own
        # refusal comes back (an async call declares elicitation and is asked, below).
        assert_problem(plain, 502)
        assert "Elicitation not supported" in plain.json()["detail"]
        started = (await gateway.api.post("/api/v1/servers/vs/tools/ask__ask_name", json={}, headers=ASYNC)).json()
        with anyio.fail_after(30):
            async for name, data in events(gateway.api, started["events_url"], until="input_required"):
                assert name == "input_required"
                assert data["method"] == "elicitation/create" and data["params"]["message"] == "What is your name?"
            waiting = (await gateway.api.get(started["status_url"])).json()
            assert waiting["state"] == "input_required"
            answer = {"action": "accept", "content": {"name": "Ada"}}
            answered = await gateway.api.post(f"{started['status_url']}/answer", json=answer)
            assert answered.status_code == 202, answered.text
            async for name, data in events(gateway.api, started["events_url"], until="result"):
                pass
        assert data["result"]["content"][0]["text"] == "Hello, Ada!"
        assert_problem(await gateway.api.post(f"{started['status_url']}/answer", json=answer), 409)


async def test_a_call_is_its_callers_and_a_refusal_is_answered_at_once(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "upstreams": ["fx"], "policy": {"rules": [{"effect": "allow", "tools": ["fx__echo"]}]}})
    started = (await gateway.api.post("/api/v1/servers/vs/tools/fx__echo", json={"text": "x"}, headers=ASYNC)).json()
    secret = (await create_token(gateway, servers=["vs"]))["token"]
    async with httpx2.AsyncClient(base_url=gateway.base_url, headers={"Authorization": f"Bearer {secret}"}) as other:
        assert_problem(await other.get(started["status_url"]), 404)
        assert_problem(await other.get(started["events_url"]), 404)
        # Refused by the policy before it ran: the refusal itself, as for a plain call, not a 202.
        denied = await other.post("/api/v1/servers/vs/tools/fx__add", json={"a": 1, "b": 2}, headers=ASYNC)
    assert_problem(denied, 403)
