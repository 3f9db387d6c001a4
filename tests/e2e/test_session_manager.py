"""Bastion's own 2025-11-25 session manager (web/session_manager.py), on a real HTTP server with a
plain SDK server behind it:
- a call served outside the transport (the fast path's `hold`) keeps the session from being reaped
  as idle for as long as it runs; once nothing is in flight the session ends and its id answers 404;
- server-to-client request ids are spread on the wire per session, the session waits for exactly
  the ids it sent, and the client's answer is mapped back to the request that asked;
- each handler runs with its own session's connection (`current_connection()`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp.server import Server, ServerRequestContext
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.message import ServerMessageMetadata
from mcp_types import CallToolRequestParams, ListRootsRequest, ListRootsResult
from starlette.types import Receive, Scope, Send

from bastion.web.session_link import current_connection
from bastion.web.session_manager import SessionManager
from tests.harness import open_raw_session, serve_asgi, session_headers

pytestmark = pytest.mark.anyio



def _server() -> Server[Any]:
    """A server whose one tool asks the client for its roots and says whose session it served."""

    async def call(ctx: ServerRequestContext[Any], _params: CallToolRequestParams) -> dict[str, Any]:
        connection = current_connection()
        assert connection is not None
        # Asked on the call's own stream, as Bastion asks (web/bridge.py).
        related = ServerMessageMetadata(related_request_id=ctx.request_id)
        roots = await ctx.session.send_request(ListRootsRequest(), ListRootsResult, metadata=related)
        text = f"{connection.session_id} {roots.roots[0].uri}"
        return {"content": [{"type": "text", "text": text}]}

    server: Server[Any] = Server("asking")
    server.add_request_handler("tools/call", CallToolRequestParams, call)
    return server


@asynccontextmanager
async def _served(idle_timeout: float | None = None) -> AsyncIterator[tuple[SessionManager, str]]:
    manager = SessionManager(
        _server(),
        security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        max_request_body_size=1 << 20,
        idle_timeout=idle_timeout,
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await manager.handle_request(scope, receive, send)

    async with manager.run(), serve_asgi(app) as base:
        yield manager, f"{base}/mcp"


async def _messages(response: httpx2.Response) -> AsyncIterator[dict[str, Any]]:
    """The JSON-RPC messages of an SSE response (priming events, which carry no data, skipped)."""
    async for line in response.aiter_lines():
        if line.startswith("data:") and line[5:].strip():
            yield json.loads(line[5:])


async def _ping(http: httpx2.AsyncClient, url: str, session_id: str) -> httpx2.Response:
    return await http.post(url, headers=session_headers(session_id, token=None), json={"jsonrpc": "2.0", "id": 9, "method": "ping"})


async def test_a_held_call_keeps_its_session_past_the_idle_timeout_and_the_session_ends_after() -> None:
    async with _served(idle_timeout=0.3) as (manager, url), httpx2.AsyncClient(timeout=10) as http:
        session_id = await open_raw_session(http, url, token=None, capabilities={"roots": {}})
        with manager.hold(session_id):
            # The idle timeout is what is tested: the call is held for twice as long.
            await anyio.sleep(0.6)
            assert manager.holds(session_id)
            assert (await _ping(http, url, session_id)).status_code == 200
        with anyio.fail_after(5):
            while manager.holds(session_id):
                await anyio.sleep(0.05)
        gone = await _ping(http, url, session_id)
        assert gone.status_code == 404
        assert gone.json()["error"]["message"] == "Session not found"


async def test_server_to_client_request_ids_are_spread_per_session_and_answers_mapped_back() -> None:
    async with _served() as (manager, url), httpx2.AsyncClient(timeout=10) as http:
        sessions = [await open_raw_session(http, url, token=None, capabilities={"roots": {}}) for _ in range(2)]
        wire_ids: list[int] = []
        for session_id in sessions:
            manager.spread_ids(session_id)
            call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "ask", "arguments": {}}}
            async with http.stream("POST", url, headers=session_headers(session_id, token=None), json=call) as response:
                messages = _messages(response)
                with anyio.fail_after(5):
                    ask = await anext(messages)
                assert ask["method"] == "roots/list"
                wire_ids.append(ask["id"])
                assert manager.awaits_response(session_id, ask["id"])
                assert not any(manager.awaits_response(other, ask["id"]) for other in sessions if other != session_id)
                answer = {"jsonrpc": "2.0", "id": ask["id"], "result": {"roots": [{"uri": f"file:///{session_id}"}]}}
                assert (await http.post(url, headers=session_headers(session_id, token=None), json=answer)).status_code == 202
                with anyio.fail_after(5):
                    result = await anext(messages)
            assert result["id"] == 2
            assert result["result"]["content"][0]["text"] == f"{session_id} file:///{session_id}"
            assert not manager.awaits_response(session_id, ask["id"])
        # Each session's dispatcher numbered its question alike; on the wire they are far apart.
        assert wire_ids[0] != wire_ids[1]
        assert all(isinstance(i, int) and i > 1 for i in wire_ids)


async def test_an_unspread_session_keeps_the_dispatchers_own_ids() -> None:
    async with _served() as (manager, url), httpx2.AsyncClient(timeout=10) as http:
        session_id = await open_raw_session(http, url, token=None, capabilities={"roots": {}})
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "ask", "arguments": {}}}
        async with http.stream("POST", url, headers=session_headers(session_id, token=None), json=call) as response:
            messages = _messages(response)
            with anyio.fail_after(5):
                ask = await anext(messages)
            assert manager.awaits_response(session_id, ask["id"]) and manager.awaits_response(session_id, str(ask["id"]))
            answer = {"jsonrpc": "2.0", "id": ask["id"], "result": {"roots": [{"uri": "file:///x"}]}}
            assert (await http.post(url, headers=session_headers(session_id, token=None), json=answer)).status_code == 202
            with anyio.fail_after(5):
                result = await anext(messages)
        assert result["result"]["content"][0]["text"] == f"{session_id} file:///x"
