"""List pages are encoded once per view and reused: what clients walk stays exactly the composed list,
a policy-filtered list stays filtered, and a catalog change shows in the very next list."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client
from mcp.types import PaginatedRequestParams

from tests.harness import Running, serve, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio

GUARD = {"rules": [{"effect": "deny", "tools": ["fx__add", "fx__hidden"]}, {"effect": "allow", "tools": ["*"]}]}


async def walk(client: Client) -> list[str]:
    """Every tool name of the list, page by page, as a client walks it."""
    result = await client.session.list_tools()
    names = [t.name for t in result.tools]
    while result.next_cursor:
        result = await client.session.list_tools(params=PaginatedRequestParams(cursor=result.next_cursor))
        names += [t.name for t in result.tools]
    return names


async def catalog_names(gateway: Running) -> list[str]:
    return sorted(i["name"] for i in (await gateway.api.get("/api/v1/tools")).json()["items"])


async def test_cached_pages_match_the_catalog_stay_filtered_and_follow_a_refresh(tmp_path: Path) -> None:
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", page_size=4)) as gateway:
        await gateway.register({**stdio_fixture("fx"), "pin": "off"})
        await gateway.create_server({"name": "vs", "upstreams": ["fx"]})
        await gateway.create_server({"name": "guarded", "upstreams": ["fx"], "policy": GUARD})
        expected = await catalog_names(gateway)
        assert "fx__add" in expected and len(expected) > 8  # several pages
        async with (
            gateway.client("vs", mode="legacy") as legacy,
            gateway.client("vs", mode="2026-07-28") as modern,
            gateway.client("guarded", mode="legacy") as guarded_legacy,
            gateway.client("guarded", mode="2026-07-28") as guarded_modern,
        ):
            for client in (legacy, modern):
                assert await walk(client) == expected
                assert await walk(client) == expected  # the second walk is served from the cached pages
            filtered = [n for n in expected if n != "fx__add"]
            for client in (guarded_legacy, guarded_modern):
                assert await walk(client) == filtered
                assert await walk(client) == filtered

            # The upstream grows two tools (without telling); a refresh makes them part of the catalog.
            for name in ("fresh", "hidden"):
                added = await legacy.call_tool("fx__add_tool", {"name": name, "notify": False})
                assert added.content[0].text == "added"
            refreshed = await gateway.api.post("/api/v1/upstreams/fx/refresh")
            assert refreshed.status_code == 200, refreshed.text
            grown = await catalog_names(gateway)
            assert {"fx__fresh", "fx__hidden"} <= set(grown)
            for client in (legacy, modern):
                assert await walk(client) == grown
            for client in (guarded_legacy, guarded_modern):
                assert await walk(client) == [n for n in grown if n not in ("fx__add", "fx__hidden")]

            # A catalog edit (a new description) shows in the next list too.
            edited = await gateway.api.patch("/api/v1/tools/fx__fresh", json={"description": "Edited for the cache test."})
            assert edited.status_code == 200, edited.text
            for client in (legacy, modern, guarded_modern):
                assert await described(client, "fx__fresh") == "Edited for the cache test."


async def described(client: Client, name: str) -> str | None:
    """The description a full list walk shows for tool `name`."""
    result = await client.session.list_tools()
    tools = list(result.tools)
    while result.next_cursor:
        result = await client.session.list_tools(params=PaginatedRequestParams(cursor=result.next_cursor))
        tools += result.tools
    return next(t.description for t in tools if t.name == name)
