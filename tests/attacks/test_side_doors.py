"""Attack class: side doors around the one request pipeline (issue 9, finding 11).

Every request that reaches an upstream, or subscribes Bastion to one, passes authentication,
policy and rate limits like a tool call does. Each test is an attack by a real SDK client against a
real Bastion: a completion that is not counted, and resource updates delivered to a caller whose
policy denies the resource (by `resources/subscribe` on a 2025-11-25 session, by
`subscriptions/listen` in 2026-07-28).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError
from mcp.shared.subscriptions import ResourceUpdated, ToolsListChanged
from mcp.types import PromptReference, ResourceUpdatedNotification, ToolListChangedNotification

from bastion.core.errors import RateLimited
from tests.e2e.test_resource_updates import COUNTER, bump, counter_upstream, subscribe
from tests.e2e.test_token_scopes import create_token
from tests.harness import Running, serve, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio


async def test_completion_counts_against_the_rate_limits(gateway: Running) -> None:
    """`completion/complete` reaches the upstream, so it is a call: it counts against the caller's and
    the server's limits like a tool call, and is refused past them."""
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "upstreams": ["fx"], "rate_limits": {"user": "2/day"}})
    ref = PromptReference(type="ref/prompt", name="fx__greet")
    async with gateway.client("vs", mode="legacy") as client:
        assert (await client.complete(ref, {"name": "name", "value": "al"})).completion.values
        assert not (await client.call_tool("fx__echo", {"text": "one"})).is_error
        with pytest.raises(MCPError) as refused:
            await client.complete(ref, {"name": "name", "value": "al"})
        assert refused.value.code == RateLimited.jsonrpc_code
        with pytest.raises(MCPError) as refused:
            await client.call_tool("fx__echo", {"text": "two"})
        assert refused.value.code == RateLimited.jsonrpc_code


class Heard:
    """What a client heard, in order: resource updates and tool list changes (the marker)."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self._arrived = anyio.Event()

    async def handler(self, message: object) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            self.events.append(f"updated {message.params.uri}")
        elif isinstance(message, ToolListChangedNotification):
            self.events.append("tools changed")
        else:
            return
        self._arrived.set()
        self._arrived = anyio.Event()

    def count(self, event: str) -> int:
        return self.events.count(event)

    async def wait_for(self, event: str, count: int = 1) -> None:
        while self.count(event) < count:
            await self._arrived.wait()


def policy(denied_token: str | None) -> dict[str, Any]:
    """The admin may use everything; everyone else every tool and resource, but `denied_token` not
    fixture://counter."""
    rules: list[dict[str, Any]] = [{"effect": "allow", "roles": ["admin"], "tools": ["*"], "resources": ["*"]}]
    if denied_token is not None:
        rules.append({"effect": "deny", "tokens": [denied_token], "resources": [COUNTER]})
    rules.append({"effect": "allow", "tools": ["*"], "resources": ["*"]})
    return {"rules": rules}


@contextlib.asynccontextmanager
async def counter_gateway(tmp_path: Path) -> AsyncIterator[tuple[Running, str, str]]:
    """Bastion with `fx` (serving fixture://counter) behind `vs`; yields it, B's token and B's token id."""
    with counter_upstream("stdio") as body:
        async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/bastion.db")) as gateway:
            await gateway.register(body)
            b = await create_token(gateway, servers="*")
            await gateway.create_server({"name": "vs", "upstreams": ["fx"], "policy": policy(None)})
            yield gateway, b["token"], b["id"]


async def set_policy(gateway: Running, denied_token: str | None) -> None:
    response = await gateway.api.patch("/api/v1/servers/vs", json={"policy": policy(denied_token)})
    assert response.status_code == 200, response.text


async def change_a_tool(gateway: Running, attempt: int) -> None:
    """A change every caller of `vs` may see: its notice comes after anything sent before it."""
    response = await gateway.api.patch("/api/v1/tools/fx__echo", json={"description": f"changed {attempt}"})
    assert response.status_code == 200, response.text


async def admin_bumps_and_hears_it(admin: Client, heard: Heard) -> None:
    """The admin (allowed) subscribes, bumps the counter and hears the update: it was fanned out."""
    seen = heard.count(f"updated {COUNTER}")
    await bump(admin)
    with anyio.fail_after(15):
        await heard.wait_for(f"updated {COUNTER}", seen + 1)


async def primed(gateway: Running, heard: Heard) -> None:
    """Wait until the legacy client's standalone stream is up (notices sent before it are lost)."""
    with anyio.fail_after(15):
        attempt = 0
        while heard.count("tools changed") == 0:
            attempt += 1
            await change_a_tool(gateway, attempt)
            with anyio.move_on_after(0.25):
                await heard.wait_for("tools changed")


async def test_a_session_denied_a_resource_after_subscribing_hears_no_more_of_it(tmp_path: Path) -> None:
    """B subscribed while allowed; the admin then denies B the resource. Its updates stop reaching B
    at once (the policy is applied to each delivery, not only to the subscribe request)."""
    b_heard, admin_heard = Heard(), Heard()
    async with (
        counter_gateway(tmp_path) as (gateway, b_token, b_id),
        gateway.client("vs", token=b_token, message_handler=b_heard.handler) as b,
        gateway.client("vs", message_handler=admin_heard.handler) as admin,
    ):
        await primed(gateway, b_heard)
        await subscribe(b, COUNTER)
        await subscribe(admin, COUNTER)
        await admin_bumps_and_hears_it(admin, admin_heard)
        with anyio.fail_after(15):
            await b_heard.wait_for(f"updated {COUNTER}")  # allowed: B hears it

        await set_policy(gateway, b_id)
        before = list(b_heard.events)
        await admin_bumps_and_hears_it(admin, admin_heard)
        marks = b_heard.count("tools changed")
        await change_a_tool(gateway, 1000)
        with anyio.fail_after(15):
            await b_heard.wait_for("tools changed", marks + 1)
        assert f"updated {COUNTER}" not in b_heard.events[len(before) :], b_heard.events
        with pytest.raises(MCPError):
            await b.read_resource(COUNTER)  # and B may not read it either


async def test_a_listener_denied_a_resource_hears_nothing_of_it(tmp_path: Path) -> None:
    """B (2026-07-28) names the denied resource in its `subscriptions/listen` filter. The stream does
    not honour it, and B hears none of its updates while the admin, who may, does."""
    admin_heard = Heard()
    async with counter_gateway(tmp_path) as (gateway, b_token, b_id):
        await set_policy(gateway, b_id)
        async with (
            gateway.client("vs", mode="2026-07-28", token=b_token) as b,
            b.listen(resource_subscriptions=[COUNTER], tools_list_changed=True) as stream,
            gateway.client("vs", message_handler=admin_heard.handler) as admin,
        ):
            assert not stream.honored.resource_subscriptions, stream.honored
            await subscribe(admin, COUNTER)
            await admin_bumps_and_hears_it(admin, admin_heard)
            await change_a_tool(gateway, 1)
            with anyio.fail_after(15):
                first = await anext(aiter(stream))
            assert first == ToolsListChanged(), f"B heard {first} before the marker"


async def test_a_listener_denied_a_resource_while_listening_hears_no_more_of_it(tmp_path: Path) -> None:
    """B listens while allowed; once denied, the open stream delivers none of the resource's updates."""
    admin_heard = Heard()
    async with counter_gateway(tmp_path) as (gateway, b_token, b_id):
        async with (
            gateway.client("vs", mode="2026-07-28", token=b_token) as b,
            b.listen(resource_subscriptions=[COUNTER], tools_list_changed=True) as stream,
            gateway.client("vs", message_handler=admin_heard.handler) as admin,
        ):
            assert stream.honored.resource_subscriptions == [COUNTER]
            events = aiter(stream)
            await subscribe(admin, COUNTER)
            await admin_bumps_and_hears_it(admin, admin_heard)
            with anyio.fail_after(15):
                assert await anext(events) == ResourceUpdated(uri=COUNTER)  # allowed: B hears it

            await set_policy(gateway, b_id)
            await admin_bumps_and_hears_it(admin, admin_heard)
            await change_a_tool(gateway, 1)
            with anyio.fail_after(15):
                following = await anext(events)
            assert following == ToolsListChanged(), f"B heard {following} after being denied the resource"


async def test_a_change_to_what_a_caller_may_not_see_is_not_announced_to_it(tmp_path: Path) -> None:
    """A tool hidden from B by the policy changes: B, in either era, is not told its tool list
    changed (it did not), so it learns nothing of what it may not see. The resource update that
    follows is the first thing B hears."""
    heard = Heard()
    async with counter_gateway(tmp_path) as (gateway, b_token, b_id):
        hidden = {"effect": "deny", "tokens": [b_id], "tools": ["fx__add"]}
        rules = [*policy(None)["rules"]]
        rules.insert(1, hidden)
        assert (await gateway.api.patch("/api/v1/servers/vs", json={"policy": {"rules": rules}})).status_code == 200
        async with (
            gateway.client("vs", token=b_token, message_handler=heard.handler) as legacy,
            gateway.client("vs", mode="2026-07-28", token=b_token) as modern,
            modern.listen(resource_subscriptions=[COUNTER], tools_list_changed=True) as stream,
        ):
            assert "fx__add" not in {t.name for t in (await legacy.list_tools()).tools}
            await primed(gateway, heard)
            await subscribe(legacy, COUNTER)
            events = aiter(stream)
            await bump(legacy)  # everything the priming announced is heard before this update
            with anyio.fail_after(15):
                await heard.wait_for(f"updated {COUNTER}")
                while await anext(events) != ResourceUpdated(uri=COUNTER):
                    pass
            marks = heard.count("tools changed")
            response = await gateway.api.patch("/api/v1/tools/fx__add", json={"description": "changed in secret"})
            assert response.status_code == 200, response.text
            await bump(legacy)
            with anyio.fail_after(15):
                await heard.wait_for(f"updated {COUNTER}", 2)
                first = await anext(events)
            assert heard.count("tools changed") == marks, heard.events
            assert first == ResourceUpdated(uri=COUNTER), f"B heard {first} of a tool it may not see"
