"""One stateless 2026-07-28 request over plain HTTP, for attacks that need exact bytes on the wire
(an SDK client would tidy a URI before sending it)."""

from __future__ import annotations

import sys
from typing import Any

import httpx2

from tests.harness import FIXTURE, TOKEN, Running

MODERN = "2026-07-28"


def bare_fixture(name: str) -> dict[str, Any]:
    """A stdio upstream that starts with only `add_tool` and `add_resource`, then lists what it is told."""
    return {"name": name, "transport": "stdio", "command": sys.executable, "args": [str(FIXTURE), "--transport", "stdio", "--bare"]}


async def rpc(gateway: Running, server: str, method: str, params: dict[str, Any], token: str = TOKEN) -> dict[str, Any]:
    """The JSON-RPC reply to one request on `server` (result or error)."""
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": meta}}
    headers = {
        "authorization": f"Bearer {token}",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": MODERN,
        "mcp-method": method,
    }
    name = params.get("name", params.get("uri"))
    if isinstance(name, str):
        headers["mcp-name"] = name
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(gateway.mcp_url(server), json=body, headers=headers)
    assert response.headers["content-type"].startswith("application/json"), response.text
    return dict(response.json())


def text_of(reply: dict[str, Any]) -> str:
    """The text of a tools/call or resources/read result; fails on an error reply."""
    assert "result" in reply, reply
    result = reply["result"]
    entries = result.get("content") or result.get("contents")
    return str(entries[0]["text"])
