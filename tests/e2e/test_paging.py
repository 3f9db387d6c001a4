"""Lists through a virtual server come in gateway-minted pages that clients can walk."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import MCPError
from mcp.types import PaginatedRequestParams

from tests.harness import serve, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_clients_walk_every_page_of_a_long_list(tmp_path: Path, mode: str) -> None:
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", page_size=3)) as gateway:
        await gateway.register(stdio_fixture("fx"))
        await gateway.create_server({"name": "vs", "upstreams": ["fx"]})
        expected = sorted(t["name"] for t in (await gateway.api.get("/api/v1/tools")).json()["items"])
        async with gateway.client("vs", mode=mode) as client:
            first = await client.session.list_tools()
            assert len(first.tools) == 3 and first.next_cursor
            names, cursor = [t.name for t in first.tools], first.next_cursor
            while cursor:
                result = await client.session.list_tools(params=PaginatedRequestParams(cursor=cursor))
                names += [t.name for t in result.tools]
                cursor = result.next_cursor
            assert names == expected

            with pytest.raises(MCPError) as bad:
                await client.session.list_tools(params=PaginatedRequestParams(cursor="bm90LW91cnM"))
            assert bad.value.code == -32602
