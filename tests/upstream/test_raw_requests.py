"""Bastion's own requests on an SDK transport's streams (upstream/raw.py), against a scripted peer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import MCPError
from mcp.shared.message import ClientMessageMetadata, SessionMessage
from mcp_types import CONNECTION_CLOSED, ErrorData, JSONRPCError, JSONRPCNotification, JSONRPCRequest, JSONRPCResponse

from bastion.upstream.raw import RawRequests

pytestmark = pytest.mark.anyio

MODERN, LEGACY = "2026-07-28", "2025-11-25"
PV = "io.modelcontextprotocol/protocolVersion"
CAPS = "io.modelcontextprotocol/clientCapabilities"


class Peer:
    """The upstream's side: sees what Bastion wrote, answers through `route` as the read stream would."""

    def __init__(self, raw: RawRequests, written: MemoryObjectReceiveStream[SessionMessage]) -> None:
        self.raw, self.written = raw, written

    async def next(self) -> tuple[Any, dict[str, str]]:
        message = await self.written.receive()
        assert isinstance(message.metadata, ClientMessageMetadata)
        return message.message, message.metadata.headers or {}

    def send(self, message: Any) -> bool:
        return self.raw.route(SessionMessage(message))


@asynccontextmanager
async def peer(capabilities: dict[str, Any] | None = None) -> AsyncIterator[Peer]:
    write: MemoryObjectSendStream[SessionMessage]
    write, written = anyio.create_memory_object_stream[SessionMessage](10)
    raw = RawRequests(client_info={"name": "bastion", "version": "1"}, capabilities=capabilities or {})
    raw.attach(write)
    with anyio.fail_after(5):
        yield Peer(raw, written)


async def test_a_2026_request_is_stamped_and_the_callers_dict_is_left_alone() -> None:
    params = {"name": "echo", "arguments": {"text": "hi"}, "_meta": {CAPS: {"elicitation": {}}, "traceparent": "t"}}
    async with peer({"sampling": {}}) as up, anyio.create_task_group() as tg:
        results: list[dict[str, Any]] = []

        async def call() -> None:
            results.append(await up.raw.request("tools/call", params, version=MODERN))

        tg.start_soon(call)
        request, headers = await up.next()
        assert up.send(JSONRPCResponse(jsonrpc="2.0", id=request.id, result={"content": [], "x": 1}))
    assert results == [{"content": [], "x": 1}]
    meta = request.params["_meta"]
    assert (meta[PV], meta[CAPS], meta["traceparent"]) == (MODERN, {"elicitation": {}}, "t")
    assert meta["io.modelcontextprotocol/clientInfo"] == {"name": "bastion", "version": "1"}
    assert headers == {"mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": "echo"}
    assert params["_meta"] == {CAPS: {"elicitation": {}}, "traceparent": "t"}  # not stamped in place


async def test_a_2026_request_without_caller_capabilities_carries_the_sessions() -> None:
    async with peer({"sampling": {}}) as up, anyio.create_task_group() as tg:
        tg.start_soon(partial(up.raw.request, "tools/list", None, version=MODERN))
        request, _ = await up.next()
        up.send(JSONRPCResponse(jsonrpc="2.0", id=request.id, result={"tools": []}))
    assert request.params["_meta"][CAPS] == {"sampling": {}}


async def test_a_2025_request_gets_the_version_header_only() -> None:
    async with peer() as up, anyio.create_task_group() as tg:
        tg.start_soon(partial(up.raw.request, "resources/read", {"uri": "x://y"}, version=LEGACY))
        request, headers = await up.next()
        up.send(JSONRPCResponse(jsonrpc="2.0", id=request.id, result={"contents": []}))
    assert (request.params, headers) == ({"uri": "x://y"}, {"mcp-protocol-version": LEGACY})


async def test_progress_reaches_the_caller_in_order_before_the_result() -> None:
    seen: list[object] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with peer() as up, anyio.create_task_group() as tg:

        async def call() -> None:
            seen.append(await up.raw.request("tools/call", {"name": "slow"}, version=LEGACY, on_progress=on_progress))

        tg.start_soon(call)
        request, _ = await up.next()
        token = request.params["_meta"]["progressToken"]
        assert token == request.id
        for n in (1, 2):
            assert up.send(JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params={"progressToken": token, "progress": n, "total": 2}))
        up.send(JSONRPCResponse(jsonrpc="2.0", id=request.id, result={"done": True}))
    assert seen == [(1.0, 2.0, None), (2.0, 2.0, None), {"done": True}]


async def test_what_is_not_ours_passes_on_to_the_sdk_session() -> None:
    async with peer() as up:
        assert not up.send(JSONRPCResponse(jsonrpc="2.0", id=1, result={}))
        assert not up.send(JSONRPCRequest(jsonrpc="2.0", id="bastion-1", method="roots/list"))
        assert not up.send(JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params={"progressToken": 1, "progress": 1}))
        assert not up.send(JSONRPCNotification(jsonrpc="2.0", method="notifications/message", params={"level": "info", "data": "x"}))
        assert up.send(JSONRPCResponse(jsonrpc="2.0", id="bastion-99", result={}))  # late: ours, dropped


async def test_an_error_reply_raises_with_its_code_and_data() -> None:
    async with peer() as up, anyio.create_task_group() as tg:
        caught: list[MCPError] = []

        async def call() -> None:
            with pytest.raises(MCPError) as raised:
                await up.raw.request("tools/call", {"name": "x"}, version=LEGACY)
            caught.append(raised.value)

        tg.start_soon(call)
        request, _ = await up.next()
        up.send(JSONRPCError(jsonrpc="2.0", id=request.id, error=ErrorData(code=-32602, message="no", data={"k": 1})))
    assert (caught[0].code, caught[0].message, caught[0].data) == (-32602, "no", {"k": 1})


async def test_an_abandoned_request_is_cancelled_upstream_and_a_closed_transport_fails_the_rest() -> None:
    async with peer() as up:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(partial(up.raw.request, "tools/call", {"name": "slow"}, version=LEGACY))
                request, _ = await up.next()
                scope.cancel()
        note, _ = await up.next()
        assert (note.method, note.params) == ("notifications/cancelled", {"requestId": request.id})
        assert up.raw.awaiting == 0

        failed: list[int] = []

        async def call() -> None:
            with pytest.raises(MCPError) as raised:
                await up.raw.request("tools/call", {"name": "slow"}, version=LEGACY)
            failed.append(raised.value.code)

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await up.next()
            up.raw.close()
        with pytest.raises(MCPError):
            await up.raw.request("ping", None, version=LEGACY)
    assert failed == [CONNECTION_CLOSED]
