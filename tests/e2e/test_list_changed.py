"""Legacy clients hear notifications/tools/list_changed when what their virtual server offers changes."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable

import anyio
import pytest
from mcp import Client, MCPError
from mcp.types import ToolListChangedNotification

from tests.harness import ROOT, Running, http_fixture
from tests.harness import stdio_fixture as pinned_stdio_fixture

ASKING = ROOT / "tests" / "upstreams" / "asking_server.py"

pytestmark = pytest.mark.anyio

# These tests are about changes reaching clients, so the upstreams are not pinned (tests/e2e/test_pinning.py
# covers what pinning holds back).
UNPINNED = {"pin": "off"}


def stdio_fixture(name: str) -> dict[str, object]:
    return {**pinned_stdio_fixture(name), **UNPINNED}


class ToolListChanges:
    """Counts tools/list_changed notifications; waiters wake on each one."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = anyio.Event()

    async def handler(self, message: object) -> None:
        if isinstance(message, ToolListChangedNotification):
            self.count += 1
            self._changed.set()
            self._changed = anyio.Event()

    async def wait_for(self, count: int) -> None:
        while self.count < count:
            await self._changed.wait()


async def tool_names(client: Client) -> set[str]:
    return {t.name for t in (await client.list_tools()).tools}


async def prime(gateway: Running, changes: ToolListChanges, tool: str) -> None:
    """Make sure the client's standalone stream is up (notifications sent before it are lost).

    There is no event for "the client's GET stream is connected", so change a description until
    one notification gets through.
    """
    with anyio.fail_after(15):
        attempt = 0
        while changes.count == 0:
            attempt += 1
            response = await gateway.api.patch(f"/api/v1/tools/{tool}", json={"description": f"primed {attempt}"})
            assert response.status_code == 200, response.text
            with anyio.move_on_after(0.25):
                await changes.wait_for(1)


async def notified_until(client: Client, changes: ToolListChanges, seen: int, ready: Callable[[set[str]], bool]) -> set[str]:
    """Wait for a notification after the `seen`th, re-list as a client would, until `ready` holds."""
    with anyio.fail_after(15):
        while True:
            await changes.wait_for(seen + 1)
            seen = changes.count
            names = await tool_names(client)
            if ready(names):
                return names


@pytest.mark.parametrize("transport", ["stdio", "streamable-http", "sse"])
async def test_upstream_adding_a_tool_reaches_the_client(gateway: Running, transport: str) -> None:
    """The fixture negotiates 2026-07-28 on every transport, so its notices come on Bastion's
    subscriptions/listen stream; the 2025-11-25 session path is the next test's."""
    with contextlib.ExitStack() as stack:
        if transport == "stdio":
            body = stdio_fixture("fx")
        else:
            body = {**stack.enter_context(http_fixture(transport)).body("fx"), **UNPINNED}
        await gateway.register(body)
        await _adding_a_tool_reaches_the_client(gateway)


async def _adding_a_tool_reaches_the_client(gateway: Running) -> None:
    await gateway.create_server({"name": "vs", "upstreams": ["fx"]})
    changes = ToolListChanges()
    async with gateway.client("vs", mode="legacy", message_handler=changes.handler) as client:
        assert "fx__dyn" not in await tool_names(client)
        await prime(gateway, changes, "fx__pid")
        seen = changes.count
        result = await client.call_tool("fx__add_tool", {"name": "dyn"})
        assert result.content[0].text == "added"
        names = await notified_until(client, changes, seen, lambda n: "fx__dyn" in n)
        assert "fx__echo" in names
        called = await client.call_tool("fx__dyn", {})
        assert called.content[0].text == "dyn called"


async def test_refresh_after_the_upstream_adds_a_tool_reaches_the_client(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "upstreams": ["fx"]})
    changes = ToolListChanges()
    async with gateway.client("vs", mode="legacy", message_handler=changes.handler) as client:
        assert "fx__dyn" not in await tool_names(client)
        await prime(gateway, changes, "fx__pid")
        seen = changes.count
        assert (await client.call_tool("fx__add_tool", {"name": "dyn"})).content[0].text == "added"
        refreshed = await gateway.api.post("/api/v1/upstreams/fx/refresh")
        assert refreshed.status_code == 200, refreshed.text
        assert "fx__dyn" in refreshed.json()["discovered"]["tools"]
        names = await notified_until(client, changes, seen, lambda n: "fx__dyn" in n)
        assert "fx__echo" in names
        called = await client.call_tool("fx__dyn", {})
        assert not called.is_error
        assert called.content[0].text == "dyn called"
    tools = (await gateway.api.get("/api/v1/tools", params={"q": "dyn"})).json()["items"]
    assert [t["name"] for t in tools] == ["fx__dyn"]


async def test_patching_the_server_reaches_the_client(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "tools": ["fx__echo"]})
    changes = ToolListChanges()
    async with gateway.client("vs", mode="legacy", message_handler=changes.handler) as client:
        assert await tool_names(client) == {"fx__echo"}
        await prime(gateway, changes, "fx__echo")

        seen = changes.count
        response = await gateway.api.patch("/api/v1/servers/vs", json={"tools": ["fx__echo", "fx__add"]})
        assert response.status_code == 200, response.text
        assert await notified_until(client, changes, seen, lambda n: "fx__add" in n) == {"fx__echo", "fx__add"}
        added = await client.call_tool("fx__add", {"a": 2, "b": 3})
        assert added.structured_content == {"result": 5}

        seen = changes.count
        response = await gateway.api.patch("/api/v1/servers/vs", json={"tools": ["fx__add"]})
        assert response.status_code == 200, response.text
        assert await notified_until(client, changes, seen, lambda n: "fx__echo" not in n) == {"fx__add"}


async def test_disabling_a_tool_in_the_catalog_reaches_the_client(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "tools": ["fx__echo", "fx__add"]})
    changes = ToolListChanges()
    async with gateway.client("vs", mode="legacy", message_handler=changes.handler) as client:
        assert await tool_names(client) == {"fx__echo", "fx__add"}
        await prime(gateway, changes, "fx__add")

        seen = changes.count
        response = await gateway.api.patch("/api/v1/tools/fx__echo", json={"enabled": False})
        assert response.status_code == 200, response.text
        assert await notified_until(client, changes, seen, lambda n: "fx__echo" not in n) == {"fx__add"}
        with pytest.raises(MCPError, match="disabled"):
            await client.call_tool("fx__echo", {"text": "x"})

        seen = changes.count
        response = await gateway.api.patch("/api/v1/tools/fx__echo", json={"enabled": True})
        assert response.status_code == 200, response.text
        assert await notified_until(client, changes, seen, lambda n: "fx__echo" in n) == {"fx__add", "fx__echo"}


async def test_client_that_only_initialized_is_told_of_changes(gateway: Running) -> None:
    """A legacy client that has sent nothing after the handshake still hears about list changes."""
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "quiet", "tools": ["fx__echo"]})
    changed = anyio.Event()

    async def handler(message: object) -> None:
        if isinstance(message, ToolListChangedNotification):
            changed.set()

    async with gateway.client("quiet", mode="legacy", message_handler=handler):
        with anyio.fail_after(15):
            # The client's GET stream may not be open yet when the first change is made, and a
            # notification sent before it opens is lost; keep changing until one arrives.
            step = 0
            while not changed.is_set():
                step += 1
                body = {"tools": ["fx__echo", "fx__add"] if step % 2 else ["fx__echo"]}
                response = await gateway.api.patch("/api/v1/servers/quiet", json=body)
                assert response.status_code == 200, response.text
                with anyio.move_on_after(0.5):
                    await changed.wait()


async def test_health_check_picks_up_a_silent_catalog_change(gateway: Running) -> None:
    """An upstream that changes its tools without saying so is caught by the periodic check."""
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "s", "upstreams": ["fx"]})
    async with gateway.client("s", mode="legacy") as client:
        await client.call_tool("fx__add_tool", {"name": "hushed", "notify": False})
        listed = await gateway.api.get("/api/v1/tools", params={"upstream": "fx"})
        assert "fx__hushed" not in [t["name"] for t in listed.json()["items"]]
        before = (await gateway.api.get("/api/v1/upstreams/fx")).json()["last_seen"]

        await gateway.bastion.gateway.check_health()

        listed = await gateway.api.get("/api/v1/tools", params={"upstream": "fx"})
        assert "fx__hushed" in [t["name"] for t in listed.json()["items"]]
        upstream = (await gateway.api.get("/api/v1/upstreams/fx")).json()
        assert upstream["status"] == "healthy" and upstream["last_seen"] > before
        result = await client.call_tool("fx__hushed", {})
        assert result.content[0].text == "hushed called"


async def test_a_handshake_only_upstream_adding_a_tool_reaches_the_catalog(gateway: Running) -> None:
    """A 2025-11-25 upstream sends tools/list_changed on its session: Bastion refreshes its catalog."""
    proc = subprocess.Popen([sys.executable, str(ASKING), "--port", "0"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        port = int(proc.stdout.readline().split()[1])
        await gateway.register({"name": "old", "transport": "sse", "url": f"http://127.0.0.1:{port}/sse", **UNPINNED})
        assert gateway.bastion.pool.connection("old").client.protocol_version == "2025-11-25"  # type: ignore[union-attr]
        await gateway.create_server({"name": "vs", "upstreams": ["old"]})
        async with gateway.client("vs", mode="legacy") as client:
            assert (await client.call_tool("old__add_tool", {"name": "fresh"})).content[0].text == "added"
            with anyio.fail_after(15):
                while "old__fresh" not in await tool_names(client):
                    await anyio.sleep(0.05)  # no event marks the end of Bastion's refresh
            assert (await client.call_tool("old__fresh", {})).content[0].text == "fresh called"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
