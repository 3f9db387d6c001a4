"""Class: keys that differ between replicas, or that an operator can forget (keys and misconfiguration).

With several replicas (Redis) or a shared database, a key one process invents for itself breaks
what another replica must open (legacy sessions, requestState, sealed upstream credentials):
Bastion refuses to start without BASTION_ROOT_KEY (or the specific keys). With the root key alone,
every key is derived from it, the same on every replica."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from bastion.app import running
from tests.harness import TOKEN, http_fixture, postgres_database, settings_for
from tests.replicas.cluster import REDIS_URL, replicas

pytestmark = pytest.mark.anyio
LEGACY = "2025-11-25"
ACCEPT = "application/json, text/event-stream"


async def _refused(settings: Any) -> str:
    with pytest.raises(ValueError) as refused:
        async with running(settings):
            pass
    return str(refused.value)


async def test_a_shared_database_without_a_root_key_refuses_to_start(tmp_path: Path) -> None:
    async with postgres_database() as url:
        message = await _refused(settings_for(url, state_key=None))
    assert "BASTION_ROOT_KEY" in message


async def test_redis_without_a_root_key_refuses_to_start(tmp_path: Path) -> None:
    settings = settings_for(
        f"sqlite+aiosqlite:///{tmp_path}/b.db", redis_url=REDIS_URL, redis_prefix=f"t{os.getpid()}", state_key=None
    )
    assert "BASTION_ROOT_KEY" in await _refused(settings)


async def _legacy(url: str, body: dict[str, Any], session: str | None = None) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": ACCEPT, "Content-Type": "application/json"}
    if session is not None:
        headers |= {"Mcp-Session-Id": session, "Mcp-Protocol-Version": LEGACY}
    async with httpx2.AsyncClient(timeout=30) as http:
        return await http.post(url, headers=headers, json=body)


async def test_two_replicas_with_only_the_root_key_share_sessions_and_sealed_secrets(tmp_path: Path) -> None:
    root = base64.b64encode(os.urandom(48)).decode()
    with http_fixture() as upstream:
        async with replicas(2, tmp_path, root_key=root) as (r1, r2):
            body = {**upstream.body("fx"), "headers": {"X-Api-Key": "sealed-by-the-derived-kek"}}
            assert (await r1.api.post("/api/v1/upstreams", json=body)).status_code == 201
            assert (await r1.api.post("/api/v1/servers", json={"name": "vs", "upstreams": ["fx"]})).status_code == 201

            # A sealed credential stored by replica 1 opens on replica 2.
            with anyio.fail_after(20):
                while (await r2.api.get("/api/v1/servers/vs")).status_code != 200:
                    await anyio.sleep(0.05)  # the change feed is asynchronous
            reply = await r2.call_tool("vs", "fx__whoami", {})
            seen = json.loads(reply["result"]["content"][0]["text"])
            assert seen.get("x-api-key") == "sealed-by-the-derived-kek"

            # A legacy session opened on replica 1 goes on on replica 2.
            init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
            opened = await _legacy(f"{r1.base_url}/servers/vs/mcp", init)
            assert opened.status_code == 200, opened.text
            session = opened.headers["mcp-session-id"]
            notice = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            assert (await _legacy(f"{r1.base_url}/servers/vs/mcp", notice, session)).status_code == 202
            listed = await _legacy(f"{r2.base_url}/servers/vs/mcp", {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, session)
            assert listed.status_code == 200, listed.text
