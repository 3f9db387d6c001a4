"""A synchronous facade call ends with its client: a client that goes away mid-call cancels the
call upstream at once (as over MCP), and the audit records it as cancelled, not as a timeout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx2
import pytest

from tests.harness import Running, serve, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio
SLOW = {"seconds": 600}


@pytest.fixture
async def patient(tmp_path: Path) -> AsyncIterator[Running]:
    # A call timeout far beyond the hang guard below: only the client leaving can end the call in time.
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", call_timeout=300.0)) as gateway:
        await gateway.register(stdio_fixture("fx"))
        await gateway.create_server({"name": "vs", "upstreams": ["fx"]})
        yield gateway


async def _count(api: httpx2.AsyncClient, tool: str) -> int:
    answered = await api.post(f"/api/v1/servers/vs/tools/{tool}", json={})
    assert answered.status_code == 200, answered.text
    return int(answered.json()["structured"]["result"])


async def test_a_client_that_leaves_a_synchronous_call_cancels_it_upstream(patient: Running) -> None:
    api = patient.api
    before = await _count(api, "fx__cancelled_count")
    headers = {"Authorization": api.headers["authorization"]}
    # Hang guard only: the upstream call runs for 600 s and the call timeout is 300 s.
    with anyio.fail_after(60):
        async with httpx2.AsyncClient(base_url=patient.base_url, timeout=700) as http, anyio.create_task_group() as tg:

            async def call() -> None:
                await http.post("/api/v1/servers/vs/tools/fx__slow", json=SLOW, headers=headers)

            tg.start_soon(call)
            while await _count(api, "fx__slow_running") == 0:  # no event says the upstream started it
                await anyio.sleep(0.02)
            tg.cancel_scope.cancel()  # the client goes: its connection closes mid-call
        while await _count(api, "fx__cancelled_count") == before:
            await anyio.sleep(0.05)
        assert await _count(api, "fx__slow_running") == 0
        outcomes: list[str] = []
        while not outcomes:  # audited once the pipeline saw the cancellation
            records = (await api.get("/api/v1/audit", params={"limit": "100"})).json()["items"]
            outcomes = [r["outcome"] for r in records if r["target"] == "fx__slow"]
            await anyio.sleep(0.05)
    assert outcomes == ["cancelled"]
