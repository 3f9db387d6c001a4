"""A POSTed MCP message is decoded once. A body the fast path does not serve on a 2025-11-25
session (a progress token, a log level, a cancel, any method it does not serve) was decoded by the
fast path's check, again to hold its id on the session, and again to check its id before the SDK.
Each look now reuses the one decoded message."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

import bastion.web.mcp_fast as mcp_fast
from tests.harness import Running, open_raw_session, serve, session_headers, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Running]:
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as running:
        await running.register(stdio_fixture("fx"))
        await running.create_server({"name": "vs", "upstreams": ["fx"]})
        yield running


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The bodies the MCP endpoints' JSON reader decodes, one entry a decoding."""
    seen: list[bytes] = []
    original = mcp_fast.loads

    def counting(body: bytes | bytearray | str) -> Any:
        seen.append(bytes(body) if not isinstance(body, str) else body.encode())
        return original(body)

    monkeypatch.setattr(mcp_fast, "loads", counting)
    return seen


MESSAGES = {
    "log level": {"jsonrpc": "2.0", "id": 41, "method": "logging/setLevel", "params": {"level": "info"}},
    "progress token": {"jsonrpc": "2.0", "id": 42, "method": "ping", "params": {"_meta": {"progressToken": "p"}}},
    "cancel": {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3}},
}


@pytest.mark.parametrize("name", list(MESSAGES))
async def test_a_body_the_fast_path_does_not_serve_is_decoded_once(gateway: Running, decoded: list[bytes], name: str) -> None:
    url = gateway.mcp_url("vs")
    body = json.dumps(MESSAGES[name]).encode()
    async with httpx2.AsyncClient(timeout=30) as http:
        session_id = await open_raw_session(http, url)
        answer = await http.post(url, headers={**session_headers(session_id), "content-type": "application/json"}, content=body)
    assert answer.status_code in (200, 202), answer.text
    assert decoded.count(body) == 1
