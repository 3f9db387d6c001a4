"""Resuming a call's stream on a caller's own upstream session (SEP-1699), with hand-made upstreams.

- The call runs at most once: the upstream accepts it, streams one event and drops the stream; when
  Bastion resumes, the upstream has forgotten the session (404, e.g. it restarted). Before, Bastion took
  that 404 for "the upstream ran nothing" and sent the call again on a new session: a tool with side
  effects ran twice. Now the caller gets an error.
- A stream cut inside an event resumes from the last whole event: the id of the cut one was taken
  as delivered, so the reply it carried was never asked for again and the call failed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ListRootsResult, Root
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.harness import TOKEN, Running, serve_asgi

pytestmark = pytest.mark.anyio


def _handshake(message: dict[str, Any], session: str) -> Response | None:
    """What both upstreams answer alike: notifications, discovery (none: a 2025-11-25 server),
    initialize with a session id, a tools/list of one `charge` tool."""
    method, rid = message.get("method"), message.get("id")
    if rid is None:
        return Response(status_code=202)
    if method == "server/discover":
        return JSONResponse({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "no"}}, 404)
    if method == "initialize":
        result = {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": {"name": "up", "version": "1"}}
        return JSONResponse({"jsonrpc": "2.0", "id": rid, "result": result}, headers={"mcp-session-id": session})
    if method == "tools/list":
        return JSONResponse({"jsonrpc": "2.0", "id": rid, "result": {"tools": [{"name": "charge", "inputSchema": {"type": "object"}}]}})
    if method != "tools/call":
        return JSONResponse({"jsonrpc": "2.0", "id": rid, "result": {}})
    return None


def forgetful_upstream(runs: list[str]) -> Starlette:
    """A minimal stateful 2025-11-25 server whose `charge` tool drops its stream after one event and
    which then forgets every session (any GET resuming it is a 404)."""

    async def mcp(request: Request) -> Response:
        if request.method == "GET":
            return Response(status_code=404 if request.headers.get("last-event-id") else 405)
        if request.method == "DELETE":
            return Response(status_code=200)
        answered = _handshake(json.loads(await request.body()), f"s{len(runs)}")
        if answered is not None:
            return answered
        runs.append(request.headers.get("mcp-session-id", ""))

        async def events() -> Any:
            log = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "charging"}}
            yield f"id: e1\ndata: {json.dumps(log)}\n\n".encode()  # then the stream ends, no reply

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/mcp", mcp, methods=["GET", "POST", "DELETE"])])


async def _roots(_ctx: Any) -> ListRootsResult:
    return ListRootsResult(roots=[Root(uri="file:///work/a")])  # type: ignore[arg-type]


@asynccontextmanager
async def _own_session_client(gateway: Running, upstream: Starlette) -> AsyncIterator[Client]:
    """`upstream` behind the gateway, and a 2025-11-25 client whose calls run on an upstream session of
    its own (it declares roots)."""
    async with serve_asgi(upstream) as base:
        await gateway.register({"name": "pay", "transport": "streamable-http", "url": f"{base}/mcp", "pin": "off"})
        await gateway.create_server({"name": "pay", "upstreams": ["pay"], "prefix": "never"})
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        transport = streamable_http_client(gateway.mcp_url("pay"), http_client=http)
        with anyio.fail_after(60):
            async with Client(transport, mode="legacy", list_roots_callback=_roots) as client:
                yield client


async def test_a_call_the_upstream_began_is_not_run_again_on_a_new_session(gateway: Running) -> None:
    runs: list[str] = []
    async with _own_session_client(gateway, forgetful_upstream(runs)) as client:
        with pytest.raises(MCPError, match="lost this caller's session"):
            await client.call_tool("charge", {})
    assert len(runs) == 1, runs


def cut_mid_event_upstream(resumed_from: list[str]) -> Starlette:
    """`charge` streams one whole event (e0), then the reply's event (e1) cut before its end; a resume
    replays what follows the id it is given (from e0: the whole reply; from e1: nothing)."""
    reply = {"jsonrpc": "2.0", "id": None, "result": {"content": [{"type": "text", "text": "charged once"}]}}
    log = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "charging"}}
    calls: dict[str, Any] = {}

    async def mcp(request: Request) -> Response:
        if request.method == "GET":
            last = request.headers.get("last-event-id")
            if last is None:
                return Response(status_code=405)
            resumed_from.append(last)
            body = f"id: e1\ndata: {json.dumps(calls['reply'])}\n\n" if last == "e0" else ""
            return Response(body, media_type="text/event-stream")
        if request.method == "DELETE":
            return Response(status_code=200)
        message = json.loads(await request.body())
        answered = _handshake(message, "s1")
        if answered is not None:
            return answered
        calls["reply"] = {**reply, "id": message["id"]}
        whole = json.dumps(calls["reply"])

        async def events() -> Any:
            yield f"id: e0\ndata: {json.dumps(log)}\n\n".encode()
            yield f"id: e1\ndata: {whole[: len(whole) // 2]}".encode()  # cut inside the event

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/mcp", mcp, methods=["GET", "POST", "DELETE"])])


async def test_a_stream_cut_inside_an_event_resumes_from_the_last_whole_one(gateway: Running) -> None:
    resumed_from: list[str] = []
    async with _own_session_client(gateway, cut_mid_event_upstream(resumed_from)) as client:
        result = await client.call_tool("charge", {})
    assert result.content[0].text == "charged once"  # type: ignore[union-attr]
    assert resumed_from == ["e0"]
