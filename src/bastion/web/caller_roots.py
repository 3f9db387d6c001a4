"""A 2025-11-25 caller's `notifications/roots/list_changed`: passed on to the caller's own upstream
sessions (only theirs), whose upstream may then ask it `roots/list` outside any call, as a server
does directly. That question goes on the caller's session's standalone stream; a caller that cannot
be asked there (no stream open here, the session gone, no answer in time) is answered for with an
error, so the upstream never waits on it. That is on this replica: the others, which may hold own
sessions of the same caller, hear of it on the change feed and end theirs (app/shared.py
`RootsEverywhere`).

Notifications are never served by the fast path (web/mcp_fast.py takes requests only), so the SDK
server's notification handler is the one place they arrive.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio
from mcp import MCPError
from mcp.server import ServerRequestContext
from mcp.server.connection import Connection
from mcp_types import NotificationParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.requests import Request

from bastion.core.ports import AskCallback
from bastion.web.relay import session_key
from bastion.web.scope import principal_of
from bastion.web.session_link import session_connection

ROOTS_CHANGED = "notifications/roots/list_changed"
ASK_TIMEOUT = 60.0
"""How long an upstream's `roots/list` outside a call waits for the caller's answer."""


class CallerRoots(Protocol):
    """Where a caller's changed roots go: its own upstream sessions (`UpstreamPool.roots_changed`)."""

    async def roots_changed(self, user: str | None, session: str, ask: AskCallback | None) -> None: ...


def _error(message: str) -> dict[str, Any]:
    return {"code": -32603, "message": message}


def ask_outside_calls(connection: Connection, stream_open: Callable[[Connection], bool]) -> AskCallback:
    """Puts an upstream's `roots/list` to the caller on its session's standalone stream, when
    `stream_open` says one is connected here; anything else asked outside a call is refused."""
    ref = weakref.ref(connection)  # an upstream session kept for a while must not keep the caller's alive

    async def ask(method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method != "roots/list":
            return _error(f"Bastion cannot route this {method}: no call of this caller is waiting for input")
        caller = ref()
        if caller is None:
            return _error("Bastion cannot ask the caller for its roots: its session has ended")
        if not caller.has_standalone_channel or not stream_open(caller):
            return _error("Bastion cannot ask the caller for its roots: it has no stream open to be asked on")
        try:
            return dict(await caller.send_raw_request(method, params, {"timeout": ASK_TIMEOUT}))
        except MCPError as exc:
            return {"code": exc.code, "message": exc.message}
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
            return _error("Bastion cannot ask the caller for its roots: its session has ended")

    return ask


def roots_changed_handler(
    roots: CallerRoots, stream_open: Callable[[Connection], bool]
) -> Callable[[ServerRequestContext[Any], NotificationParams], Awaitable[None]]:
    """The SDK server's handler for a client's `notifications/roots/list_changed`."""

    async def handle(ctx: ServerRequestContext[Any], _params: NotificationParams) -> None:
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return  # no 2026-07-28 session holds roots: they travel with each request
        request = ctx.request
        principal = principal_of(request.scope) if isinstance(request, Request) else None
        # Whose own upstream sessions: keyed as the dispatch stage keys them (the verified user).
        user = (principal.user or principal.id) if principal is not None else None
        connection = session_connection()
        # An upstream told of the change asks `roots/list` back at once: without a stream of the
        # caller's open here to ask on, its sessions are ended instead (their next call asks afresh).
        askable = connection.has_standalone_channel and stream_open(connection)
        ask = ask_outside_calls(connection, stream_open) if askable else None  # holds the connection weakly
        await roots.roots_changed(user, session_key(connection.state, connection.session_id), ask)

    return handle
