"""Resource subscriptions through a virtual server: `resources/subscribe` (2025-11-25) and
`subscriptions/listen` (2026-07-28) clients hear `fixture://counter` change when `fx__bump` runs.

The fixture upstream runs with `--counter`, which adds the subscribable resource and `bump`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.shared.subscriptions import ResourceUpdated
from mcp.types import ResourceUpdatedNotification

from tests.harness import Running, http_fixture, serve, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio

COUNTER = "fixture://counter"
# The fixture negotiates 2026-07-28 with Bastion over all three, so Bastion subscribes upstream
# through `subscriptions/listen`; the transports differ in how that stream is carried.
UPSTREAMS = ["stdio", "streamable-http", "sse"]


@contextlib.contextmanager
def counter_upstream(transport: str) -> Iterator[dict[str, Any]]:
    """The registration body for the fixture upstream `fx`, serving fixture://counter."""
    if transport == "stdio":
        body = stdio_fixture("fx")
        yield {**body, "args": [*body["args"], "--counter"]}
    else:
        with http_fixture(transport, "--counter") as upstream:
            yield upstream.body("fx")


@contextlib.asynccontextmanager
async def counter_gateway(
    tmp_path: Path, transport: str, server: dict[str, Any] | None = None
) -> AsyncIterator[Running]:
    """Bastion with `fx` (serving fixture://counter) behind the virtual server `vs`.

    Bastion stops before the upstream does, so an HTTP upstream is not left waiting out its
    graceful shutdown on Bastion's open listen stream.
    """
    with counter_upstream(transport) as body:
        async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/bastion.db")) as gateway:
            await gateway.register(body)
            await gateway.create_server(server or {"name": "vs", "upstreams": ["fx"]})
            yield gateway


class Updates:
    """Records resources/updated notifications; waiters wake on each one."""

    def __init__(self) -> None:
        self.uris: list[str] = []
        self._arrived = anyio.Event()

    async def handler(self, message: object) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            self.uris.append(str(message.params.uri))
            self._arrived.set()
            self._arrived = anyio.Event()

    async def wait_for(self, count: int) -> None:
        while len(self.uris) < count:
            await self._arrived.wait()


async def subscribe(client: Client, uri: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)  # removed in 2026-07-28, still the 2025-11-25 way
        await client.subscribe_resource(uri)


async def unsubscribe(client: Client, uri: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        await client.unsubscribe_resource(uri)


async def bump(client: Client) -> int:
    result = await client.call_tool("fx__bump", {})
    assert not result.is_error, result
    assert result.structured_content is not None
    return int(result.structured_content["result"])


@pytest.mark.parametrize("transport", UPSTREAMS)
async def test_legacy_subscriber_hears_updates_until_it_unsubscribes(tmp_path: Path, transport: str) -> None:
    updates = Updates()
    async with (
        counter_gateway(tmp_path, transport) as gateway,
        gateway.client("vs", mode="legacy", message_handler=updates.handler) as client,
    ):
        caps = client.server_capabilities
        assert caps is not None and caps.resources is not None and caps.resources.subscribe
        await subscribe(client, COUNTER)
        value = await bump(client)
        with anyio.fail_after(15):
            await updates.wait_for(1)
        assert set(updates.uris) == {COUNTER}
        read = await client.read_resource(COUNTER)
        assert read.contents[0].text == str(value)

        await unsubscribe(client, COUNTER)
        seen = len(updates.uris)
        await bump(client)
        with anyio.move_on_after(1):
            await updates.wait_for(seen + 1)
        assert len(updates.uris) == seen, "an update arrived after unsubscribing"


@pytest.mark.parametrize("transport", ["stdio", "streamable-http"])
async def test_modern_listener_hears_updates(tmp_path: Path, transport: str) -> None:
    async with (
        counter_gateway(tmp_path, transport) as gateway,
        gateway.client("vs", mode="2026-07-28") as client,
        client.listen(resource_subscriptions=[COUNTER]) as subscription,
    ):
        assert subscription.honored.resource_subscriptions == [COUNTER]
        value = await bump(client)
        events = aiter(subscription)
        with anyio.fail_after(15):
            assert await anext(events) == ResourceUpdated(uri=COUNTER)
        read = await client.read_resource(COUNTER)
        assert read.contents[0].text == str(value)


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_one_upstream_update_reaches_a_subscriber_once(tmp_path: Path, mode: str) -> None:
    updates = Updates()
    async with (
        counter_gateway(tmp_path, "stdio") as gateway,
        gateway.client("vs", mode=mode, message_handler=updates.handler) as client,
    ):
        if mode == "legacy":
            await subscribe(client, COUNTER)
            await bump(client)
            with anyio.fail_after(15):
                await updates.wait_for(1)
            with anyio.move_on_after(1):
                await updates.wait_for(2)
            assert updates.uris == [COUNTER], "one bump, one notifications/resources/updated"
        else:
            async with client.listen(resource_subscriptions=[COUNTER]) as subscription:
                await bump(client)
                events = aiter(subscription)
                with anyio.fail_after(15):
                    assert await anext(events) == ResourceUpdated(uri=COUNTER)
                extra: list[object] = []
                with anyio.move_on_after(1):
                    extra.append(await anext(events))
                assert extra == [], "one bump, one ResourceUpdated event"


async def test_subscribing_to_a_resource_the_server_does_not_serve_is_invalid_params(tmp_path: Path) -> None:
    only_static = {"name": "vs", "resources": ["fx__static"]}
    async with (
        counter_gateway(tmp_path, "stdio", only_static) as gateway,
        gateway.client("vs", mode="legacy") as client,
    ):
        for uri in (COUNTER, "fixture://nowhere"):  # offered by the upstream but not by vs; offered by nobody
            with pytest.raises(MCPError) as caught:
                await subscribe(client, uri)
            assert caught.value.code == -32602, caught.value
