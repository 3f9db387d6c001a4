"""The one place that reaches into the SDK's session manager (SDK-private API, pinned mcp==2.3.0).

Bastion needs what the SDK does not offer publicly: each session's events kept apart (an event
store per session), a session recreated under its existing id on a replica that did not open it
(rehydration from the shared record), a session ended here because another replica ended it, and
messages moved between replicas: a server-to-client request for the session's GET stream when that
stream is held elsewhere, and the client's answer to the replica that asked.
Re-check every use below when the SDK version changes.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
from anyio.abc import TaskStatus
from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.connection import Connection
from mcp.server.runner import serve_connection
from mcp.server.streamable_http import (
    GET_STREAM_KEY,
    EventCallback,
    EventId,
    EventMessage,
    EventStore,
    StreamableHTTPServerTransport,
    StreamId,
)
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager, _error_response
from mcp.shared.dispatcher import coerce_request_id
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
from mcp.shared.message import SessionMessage
from mcp.shared.transport_context import TransportContext
from mcp_types import INTERNAL_ERROR, JSONRPCMessage, JSONRPCRequest
from starlette.types import Receive, Scope, Send

log = logging.getLogger("bastion.mcp")

EventsFor = Callable[[str], EventStore]
"""The event store of one session, by its id."""
Forward = Callable[[str, JSONRPCMessage, EventId], Awaitable[None]]
"""Hands a session's server-to-client request, meant for its GET stream, to the replica holding it."""


class SessionManager(StreamableHTTPSessionManager):
    """The SDK's manager, with per-session event stores and session restore/end."""

    def __init__(
        self, *args: Any, events_for: EventsFor | None = None, forward: Forward | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._events_for = events_for
        self._forward = forward

    def _events(self, session_id: str) -> EventStore | None:
        if self._events_for is None:
            return self.event_store
        events = self._events_for(session_id)
        return _ForwardingEvents(events, self, session_id) if self._forward is not None else events

    def events_of(self, session_id: str) -> EventStore | None:
        """The session's event store, for answers streamed outside the SDK (web/fast_stream.py)."""
        return self._events(session_id)

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        transport = super()._admit_session(requestor)
        if transport is not None and transport.mcp_session_id is not None:
            transport._event_store = self._events(transport.mcp_session_id)  # noqa: SLF001
        return transport

    def session_counts(self) -> tuple[int, int]:
        """(sessions open here, of which with their GET stream connected here), for metrics."""
        ids = list(self._server_instances)
        return len(ids), sum(1 for sid in ids if self.streams_here(sid))

    def streams_here(self, session_id: str) -> bool:
        """Whether the session's GET stream (its standalone channel) is connected to this replica."""
        transport = self._server_instances.get(session_id)
        return transport is not None and GET_STREAM_KEY in transport._request_streams  # noqa: SLF001

    async def to_stream(self, session_id: str, message: JSONRPCMessage, event_id: EventId | None) -> bool:
        """Send `message` on the session's GET stream if it is connected here."""
        transport = self._server_instances.get(session_id)
        streams = transport._request_streams.get(GET_STREAM_KEY) if transport is not None else None  # noqa: SLF001
        if streams is None:
            return False
        try:
            await streams[0].send(EventMessage(message, event_id))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False
        return True

    def holds(self, session_id: str) -> bool:
        """Whether this replica serves `session_id` now."""
        transport = self._server_instances.get(session_id)
        return transport is not None and not transport.is_terminated

    def transport(self, session_id: str) -> StreamableHTTPServerTransport | None:
        return self._server_instances.get(session_id)

    async def restore(self, session_id: str, prepare: Callable[[Connection], None]) -> Connection | None:
        """Recreate session `session_id` here, its connection set up by `prepare` before it serves
        anything; None if the manager is not running. Mirrors `_serve_opening_request`'s server task."""
        if self._task_group is None or self.holds(session_id):
            return None
        transport = StreamableHTTPServerTransport(
            mcp_session_id=session_id,
            is_json_response_enabled=self.json_response,
            event_store=self._events(session_id),
            security_settings=self.security_settings,
            retry_interval=self.retry_interval,
            idle_timeout=self.session_idle_timeout,
        )
        self._server_instances[session_id] = transport

        async def run_server(*, task_status: TaskStatus[Connection] = anyio.TASK_STATUS_IGNORED) -> None:
            try:
                async with transport.connect() as (read_stream, write_stream):
                    dispatcher: JSONRPCDispatcher[TransportContext] = JSONRPCDispatcher(
                        read_stream, write_stream, inline_methods=frozenset({"initialize"})
                    )
                    connection = Connection.for_loop(dispatcher, session_id=session_id)
                    prepare(connection)
                    task_status.started(connection)
                    idle_scope = transport.idle_scope or anyio.CancelScope()
                    with idle_scope:
                        await serve_connection(
                            self.app, dispatcher, connection=connection, lifespan_state=self._lifespan_state
                        )
            except Exception:
                log.exception("restored session crashed")
            finally:
                await self._discard_session(session_id, transport)

        try:
            connection: Connection = await self._task_group.start(run_server)
        except RuntimeError:  # the server task ended before it was ready (logged above)
            return None
        return connection

    async def deliver(self, session_id: str, message: JSONRPCMessage) -> None:
        """Feed `message` to the session as if its client had POSTed it here."""
        transport = self._server_instances.get(session_id)
        if transport is None or transport.is_terminated:
            return
        writer = transport._read_stream_writer  # noqa: SLF001
        if writer is not None:
            await writer.send(SessionMessage(message))

    async def end(self, session_id: str) -> None:
        """End session `session_id` here (another replica deleted it): its id now answers 404."""
        transport = self._server_instances.get(session_id)
        if transport is not None:
            await self._discard_session(session_id, transport)


class _ForwardingEvents(EventStore):
    """A session's event store that also hands server-to-client requests meant for the GET stream to
    the replica holding that stream, when it is not here (the SDK would only store them)."""

    def __init__(self, inner: EventStore, manager: SessionManager, session_id: str) -> None:
        self._inner = inner
        self._manager = manager
        self._session_id = session_id

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        event_id = await self._inner.store_event(stream_id, message)
        forward = self._manager._forward  # noqa: SLF001
        if (
            forward is not None
            and stream_id == GET_STREAM_KEY
            and isinstance(message, JSONRPCRequest)
            and not self._manager.streams_here(self._session_id)
        ):
            await forward(self._session_id, message, event_id)
        return event_id

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        return await self._inner.replay_events_after(last_event_id, send_callback)


def awaits_response(connection: Connection, request_id: Any) -> bool:
    """Whether this replica's side of the session waits for the client's answer to `request_id`."""
    pending = getattr(connection.outbound, "_pending", None)
    return isinstance(pending, dict) and coerce_request_id(request_id) in pending


def spread_request_ids(connection: Connection) -> None:
    """Start the session's server-to-client request ids at a random point: several replicas serve
    one session, and a client's answer is routed by id alone."""
    if isinstance(connection.outbound, JSONRPCDispatcher):
        connection.outbound._next_id = secrets.randbelow(2**40)  # noqa: SLF001


async def session_not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """Exactly the SDK's answer for an unknown session id."""
    await _error_response("Session not found", 404)(scope, receive, send)


async def store_unavailable(scope: Scope, receive: Receive, send: Send) -> None:
    """The session store could not be reached: a JSON-RPC error with 503, in the SDK's shape."""
    await _error_response("Session store unavailable", 503, INTERNAL_ERROR)(scope, receive, send)


@contextmanager
def hold_transport(transport: StreamableHTTPServerTransport) -> Iterator[None]:
    """Count a fast-path call as a request in flight, exactly as the SDK's transport counts its own
    (SDK-private fields, pinned mcp==2.3.0), so the session is not reaped as idle mid-call."""
    scope, timeout = transport.idle_scope, transport._idle_timeout  # noqa: SLF001
    if scope is None or timeout is None:
        yield
        return
    transport._requests_in_flight += 1  # noqa: SLF001
    scope.deadline = math.inf
    try:
        yield
    finally:
        transport._requests_in_flight -= 1  # noqa: SLF001
        if not transport._requests_in_flight:  # noqa: SLF001
            scope.deadline = anyio.current_time() + timeout
