"""Class: an upstream that lists more than a gateway can hold (finding 9, items per list).

Discovery stops at BASTION_UPSTREAM_MAX_ITEMS entries per list kind (and at a page cap): a
registration is refused with the reason, and an upstream that grows past the cap later is marked
unhealthy with it while its last good catalog stays."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.attacks.modern import bare_fixture, rpc
from tests.harness import FIXTURE, serve, settings_for

pytestmark = pytest.mark.anyio


async def test_an_upstream_listing_too_many_tools_is_refused_and_reported(tmp_path: Path) -> None:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", upstream_max_items=20)
    async with serve(settings) as gateway:
        flood = {"name": "flood", "transport": "stdio", "command": sys.executable,
                 "args": [str(FIXTURE), "--transport", "stdio", "--bare", "--extra-tools", "25"]}
        refused = await gateway.api.post("/api/v1/upstreams", json=flood)
        assert refused.status_code == 502, refused.text
        assert "more than 20 tools" in refused.json()["detail"]
        assert (await gateway.api.get("/api/v1/upstreams/flood")).status_code == 404

        await gateway.register(bare_fixture("grows"))
        await gateway.create_server({"name": "ctl", "upstreams": ["grows"]})
        for index in range(20):
            added = await rpc(gateway, "ctl", "tools/call", {"name": "grows__add_tool", "arguments": {"name": f"t{index}", "notify": False}})
            assert "result" in added, added
        failed = await gateway.api.post("/api/v1/upstreams/grows/refresh")
        assert failed.status_code == 502, failed.text
        shown = (await gateway.api.get("/api/v1/upstreams/grows")).json()
        assert shown["status"] == "unhealthy"
        assert "more than 20 tools" in shown["status_reason"]
        assert shown["counts"]["tools"] == 2  # the last catalog that fitted
