"""The facade's bounds on what one caller may hold: async calls per caller (refused past the
bound, without stopping anyone else), and refusals that keep nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests.e2e.test_facade_async import ASYNC, events
from tests.e2e.test_token_scopes import create_token
from tests.harness import Running, serve, settings_for, stdio_fixture
from tests.rest.test_upstreams_api import assert_problem

pytestmark = pytest.mark.anyio
SLOW = {"seconds": 600}
"""Long enough to outlive every test: a call that runs until something cancels it."""


@pytest.fixture
async def bounded(tmp_path: Path) -> AsyncIterator[Running]:
    # A bound of 2 per caller is reached in a few calls.
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", facade_calls_per_caller=2)
    async with serve(settings) as gateway:
        await gateway.register(stdio_fixture("fx"))
        limits = {"tools": {"fx__add": "1/day"}}
        await gateway.create_server({"name": "vs", "upstreams": ["fx"], "rate_limits": limits})
        await gateway.create_server({"name": "other", "upstreams": ["fx"]})
        yield gateway


def client_of(gateway: Running, secret: str) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(base_url=gateway.base_url, headers={"Authorization": f"Bearer {secret}"}, timeout=30)


async def start(api: httpx2.AsyncClient, server: str, tool: str, arguments: dict[str, Any]) -> httpx2.Response:
    return await api.post(f"/api/v1/servers/{server}/tools/{tool}", json=arguments, headers=ASYNC)


async def ended(api: httpx2.AsyncClient, started: httpx2.Response) -> dict[str, Any]:
    assert started.status_code == 202, started.text
    with anyio.fail_after(30):
        async for _name, data in events(api, started.json()["events_url"], until="result"):
            pass
    return data  # type: ignore[no-any-return]


async def test_a_caller_at_its_bound_is_refused_and_everyone_else_still_gets_calls(bounded: Running) -> None:
    greedy = (await create_token(bounded, servers=["vs"]))["token"]
    polite = (await create_token(bounded, servers=["vs"]))["token"]
    async with client_of(bounded, greedy) as api, client_of(bounded, polite) as other:
        for _ in range(2):
            assert (await start(api, "vs", "fx__slow", SLOW)).status_code == 202
        refused = assert_problem(await start(api, "vs", "fx__echo", {"text": "one more"}), 429)
        assert "at most 2 per caller" in refused["detail"]
        # Another token, the admin, another server: each still gets a slot of its own.
        assert (await ended(other, await start(other, "vs", "fx__echo", {"text": "b"})))["state"] == "completed"
        assert (await ended(bounded.api, await start(bounded.api, "vs", "fx__echo", {"text": "a"})))["state"] == "completed"
        assert (await ended(bounded.api, await start(bounded.api, "other", "fx__echo", {"text": "o"})))["state"] == "completed"


async def test_a_callers_finished_calls_make_room_for_its_new_ones_oldest_first(bounded: Running) -> None:
    api = bounded.api
    first = await start(api, "vs", "fx__echo", {"text": "1"})
    second = await start(api, "vs", "fx__echo", {"text": "2"})
    for started in (first, second):
        assert (await ended(api, started))["state"] == "completed"
    third = await start(api, "vs", "fx__echo", {"text": "3"})
    assert (await ended(api, third))["result"]["content"][0]["text"] == "3"
    # The bound held: the oldest finished call was forgotten to make room, the newer one kept.
    assert_problem(await api.get(first.headers["location"]), 404)
    assert (await api.get(second.headers["location"])).json()["result"]["content"][0]["text"] == "2"


async def test_an_async_call_refused_before_it_runs_is_answered_at_once_and_holds_no_slot(bounded: Running) -> None:
    secret = (await create_token(bounded, servers=["vs"]))["token"]
    async with client_of(bounded, secret) as api:
        assert (await ended(api, await start(api, "vs", "fx__add", {"a": 1, "b": 2})))["state"] == "completed"
        for _ in range(3):  # past the tool's limit: each refused as a plain call is, never a 202
            limited = await start(api, "vs", "fx__add", {"a": 1, "b": 2})
            assert_problem(limited, 429)
            assert int(limited.headers["retry-after"]) >= 1 and "rate limit" in limited.json()["detail"]
        assert_problem(await start(api, "vs", "fx__nope", {}), 404)
        assert_problem(await start(api, "vs", "fx__echo", {"text": 5}), 422)
        # None of them took a slot: both of this caller's slots are still free for calls that run.
        for _ in range(2):
            assert (await start(api, "vs", "fx__slow", SLOW)).status_code == 202
        assert "at most 2 per caller" in assert_problem(await start(api, "vs", "fx__slow", SLOW), 429)["detail"]
