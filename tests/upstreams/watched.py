"""An MCP upstream, served in the test's own process over real Streamable HTTP, that records every
`resources/subscribe` and `resources/unsubscribe` it is sent, by the upstream session that sent it,
and can tell its subscribers that a resource changed (as a server whose data changed would)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from mcp.server import Server, ServerRequestContext
from mcp.server.session import ServerSession
from mcp.types import (
    EmptyResult,
    ListResourcesResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
    Resource,
    SubscribeRequestParams,
    TextResourceContents,
    UnsubscribeRequestParams,
)

from tests.harness import serve_asgi

URIS = ("watched://a", "watched://b")


@dataclass(frozen=True)
class Seen:
    method: str
    """`resources/subscribe` or `resources/unsubscribe`."""
    uri: str
    session: str
    """The upstream session (Bastion's, on one replica) that sent it."""


class WatchedUpstream:
    """The server and what it was sent; `url` is set while `serving()`."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._changed = anyio.Event()
        self._subscribers: dict[tuple[str, str], ServerSession] = {}
        self._ever: dict[tuple[str, str], ServerSession] = {}
        self.gate: anyio.Event | None = None
        """When set, a subscribe is answered only once the gate opens (it counts as subscribed before)."""
        self.url = ""
        self.server: Server[Any] = Server(
            "watched",
            on_list_resources=self._list,
            on_read_resource=self._read,
            on_subscribe_resource=self._subscribe,
            on_unsubscribe_resource=self._unsubscribe,
        )

    def body(self, name: str) -> dict[str, Any]:
        """Its registration, on a 2025-11-25 session: Bastion subscribes with `resources/subscribe`."""
        return {"name": name, "transport": "streamable-http", "url": self.url, "protocol": "2025-11-25"}

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[WatchedUpstream]:
        app = self.server.streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1")
        async with serve_asgi(app, lifespan="on") as base:
            self.url = f"{base}/mcp"
            yield self

    def count(self, method: str, uri: str) -> int:
        return sum(1 for s in self.seen if s.method == method and s.uri == uri)

    def watching(self, uri: str) -> set[str]:
        """The upstream sessions subscribed to `uri` now."""
        return {session for session, watched in self._subscribers if watched == uri}

    async def wait_for(self, method: str, uri: str, count: int = 1) -> None:
        """Until `method` for `uri` has arrived `count` times in all."""
        while self.count(method, uri) < count:
            await self._changed.wait()

    async def update(self, uri: str, *, even_unsubscribed: bool = False) -> int:
        """Tell every session subscribed to `uri` that it changed (also those that unsubscribed since,
        as a careless server might); how many were told."""
        sessions = self._ever if even_unsubscribed else self._subscribers
        told = [s for (_, watched), s in sessions.items() if watched == uri]
        sent = 0
        for session in told:
            try:
                await session.send_resource_updated(uri)
            except Exception:  # a session Bastion has left
                continue
            sent += 1
        return sent

    def _record(self, ctx: ServerRequestContext[Any], method: str, uri: str) -> str:
        request = ctx.request
        session = request.headers.get("mcp-session-id", "") if request is not None else ""
        self.seen.append(Seen(method, uri, session))
        self._changed.set()
        self._changed = anyio.Event()
        return str(session)

    async def _list(self, _ctx: ServerRequestContext[Any], _params: PaginatedRequestParams | None) -> ListResourcesResult:
        return ListResourcesResult(resources=[Resource(uri=uri, name=uri.rpartition("/")[2]) for uri in URIS])

    async def _read(self, _ctx: ServerRequestContext[Any], params: ReadResourceRequestParams) -> ReadResourceResult:
        return ReadResourceResult(contents=[TextResourceContents(uri=str(params.uri), text="value")])

    async def _subscribe(self, ctx: ServerRequestContext[Any], params: SubscribeRequestParams) -> EmptyResult:
        session = self._record(ctx, "resources/subscribe", str(params.uri))
        self._subscribers[(session, str(params.uri))] = self._ever[(session, str(params.uri))] = ctx.session
        if self.gate is not None:
            await self.gate.wait()
        return EmptyResult()

    async def _unsubscribe(self, ctx: ServerRequestContext[Any], params: UnsubscribeRequestParams) -> EmptyResult:
        session = self._record(ctx, "resources/unsubscribe", str(params.uri))
        self._subscribers.pop((session, str(params.uri)), None)
        return EmptyResult()
