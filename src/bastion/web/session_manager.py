"""Bastion's manager of 2025-11-25 Streamable HTTP sessions, built on the SDK's public pieces.

The SDK's transport (`StreamableHTTPServerTransport`) serves each session's HTTP requests, and its
dispatcher and runner serve the session's messages (web/session_link.py); this manager keeps the
sessions, answers what names none or an unknown one exactly as the SDK's manager does, and owns
what Bastion needs beyond it: an event store per session, a session recreated under its existing id
on a replica that did not open it (from the shared record), a session ended here because another
replica ended it, idle reaping that also counts fast-path calls, and messages moved between
replicas: a server-to-client request for the session's GET stream when that stream is held
elsewhere, and the client's answer to the replica that asked. 2026-07-28 requests, which have no
session, go to the SDK's own manager.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from uuid import uuid4

import anyio
from anyio.abc import TaskGroup, TaskStatus
from mcp.server import Server
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, AuthorizationContext, authorization_context
from mcp.server.connection import Connection
from mcp.server.streamable_http import (
    GET_STREAM_KEY,
    EventCallback,
    EventId,
    EventStore,
    StreamableHTTPServerTransport,
    StreamId,
)
from mcp.server.streamable_http_manager import (
    DEFAULT_MAX_SESSIONS,
    DEFAULT_SESSION_IDLE_TIMEOUT,
    StreamableHTTPSessionManager,
)
from mcp.server.transport_security import RequestBodyLimitMiddleware, TransportSecuritySettings
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    ErrorData,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCRequest,
    JSONRPCResponse,
)
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from bastion.core.errors import TooManyRequests
from bastion.web.scope import bound_holder
from bastion.web.session_bounds import Seat, SessionBounds
from bastion.web.session_link import RequestIds, SessionLink, serve_session

log = logging.getLogger("bastion.mcp")

FULL_RETRY_AFTER = 30
"""Seconds a client is told to wait when a server's table of sessions is full (they end as DELETEd or idle)."""

EventsFor = Callable[[str], EventStore]
"""The event store of one session, by its id."""
Forward = Callable[[str, JSONRPCMessage, EventId], Awaitable[None]]
"""Hands a session's server-to-client request, meant for its GET stream, to the replica holding it."""
Ended = Callable[[Connection], Awaitable[None]]
"""Told once a session's server task has ended, however it ended, with the session's connection."""
Closed = Callable[[str], Awaitable[None]]
"""Told, by id, of a session closed here for its caller's newer one: it ends on every replica too."""


@dataclass(eq=False, slots=True)
class _Session:
    transport: StreamableHTTPServerTransport
    events: _SessionEvents | None
    owner: AuthorizationContext | None
    idle: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    """Cancelled once no request has been in flight for the idle timeout: ends the session."""
    link: SessionLink | None = None
    in_flight: int = 0
    streams: int = 0
    """GET requests being served (the session's standalone stream, while it is open)."""
    seat: Seat | None = None
    """What the session counts against its caller's bound (web/session_bounds.py)."""


class SessionManager:
    """The 2025-11-25 sessions of one virtual server on this replica; see the module docstring."""

    def __init__(
        self,
        app: Server[Any],
        *,
        security_settings: TransportSecuritySettings | None,
        max_request_body_size: int,
        retry_interval: int | None = None,
        events_for: EventsFor | None = None,
        forward: Forward | None = None,
        idle_timeout: float | None = DEFAULT_SESSION_IDLE_TIMEOUT,
        max_sessions: int | None = DEFAULT_MAX_SESSIONS,
        on_end: Ended | None = None,
        bounds: SessionBounds | None = None,
        on_close: Closed | None = None,
    ) -> None:
        """`bounds` counts each caller's sessions (shared by the managers of every virtual server);
        `max_sessions` must be more than its bound, so that no one caller can fill this server."""
        self.app = app
        self._security = security_settings
        self._retry_interval = retry_interval
        self._events_for = events_for
        self._forward = forward
        self._idle_timeout = idle_timeout
        self._max_sessions = max_sessions
        self._on_end = on_end
        self._bounds = bounds
        self._on_close = on_close
        self._modern = StreamableHTTPSessionManager(
            app, security_settings=security_settings, stateless=True, max_request_body_size=max_request_body_size
        )
        self._asgi = RequestBodyLimitMiddleware(self._handle, max_request_body_size)
        self._sessions: dict[str, _Session] = {}
        self._sse_streams = 0
        """HTTP+SSE streams of this server open here: sessions too, counted against `max_sessions`."""
        self._tg: TaskGroup | None = None
        self._lifespan_state: Any = None

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Serve sessions inside this block; they all end with it."""
        async with self._modern.run(), self.app.lifespan(self.app) as state, anyio.create_task_group() as tg:
            self._tg, self._lifespan_state = tg, state
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
                self._tg = None
                self._sessions.clear()

    async def handle_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._asgi(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._tg is None:
            raise RuntimeError("the session manager is not running")
        version, session_id = mcp_headers(scope)
        if version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS:
            await self._modern.handle_request(scope, receive, send)
            return
        requestor = session_owner(scope)
        if session_id is None:
            await self._open(requestor, scope, receive, send)
            return
        session = self._sessions.get(session_id)
        if session is None or requestor != session.owner:
            # Another credential's session is answered exactly as one that does not exist.
            log.info("refused a request for an unknown or expired session")
            await session_not_found(scope, receive, send)
            return
        if session.seat is not None and session.seat.chosen and self._bounds is not None:
            # Chosen to make way for its caller's new session, which is being opened: it ends now,
            # so no request runs on it only to be cut when that session is established.
            await self._bounds.close(session.seat)
            await session_not_found(scope, receive, send)
            return
        if session.idle.cancel_called:
            # The idle period ran out and the session is ending: the transport answers as terminated.
            await self._discard(session_id, session)
        with self._held(session, stream=scope["method"] == "GET"):
            await session.transport.handle_request(scope, receive, send)
        if session.transport.is_terminated:
            await self._discard(session_id, session)  # DELETE: forgotten now, not when its task ends

    async def _open(self, requestor: AuthorizationContext | None, scope: Scope, receive: Receive, send: Send) -> None:
        """A request naming no session: only an `initialize` that succeeds keeps the session it opens."""
        if self.full():
            await self.refuse_full(scope, receive, send)
            return
        session_id = uuid4().hex
        seat = victim = None
        if self._bounds is not None:
            try:
                # Busy from the start: another `initialize` of its caller cannot choose it meanwhile.
                seat, victim = self._bounds.take(bound_holder(scope), partial(self._close, session_id), busy=True)
            except TooManyRequests as exc:
                log.warning("refusing to open a new session: its caller is at its bound, every session in use")
                await too_many(exc, scope, receive, send)
                return
        session = self._add(session_id, requestor)
        session.seat = seat
        established = False
        try:
            with self._held(session):
                assert self._tg is not None
                connection: Connection = await self._tg.start(self._serve, session_id, session, None)
                issued = await _issues(session_id, session.transport.handle_request, scope, receive, send)
            # A 200 may carry a JSON-RPC error (bad `initialize` params): only an accepted one opens a session.
            established = issued and connection.initialize_accepted
        finally:
            if not established:
                await self._discard(session_id, session)
                if victim is not None and self._bounds is not None:
                    self._bounds.give_back(victim)  # a failed `initialize` costs the caller no session
        if established and victim is not None and self._bounds is not None:
            await self._bounds.close(victim)

    def full(self) -> bool:
        """Whether this server's table is full here: `max_sessions` sessions and HTTP+SSE streams open."""
        return self._max_sessions is not None and len(self._sessions) + self._sse_streams >= self._max_sessions

    async def refuse_full(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a new session or HTTP+SSE stream refused because the server's table is `full`."""
        log.warning("refusing to open a new session: %d sessions are already open", self._max_sessions)
        full = _error_response("Too many open sessions", 503, INTERNAL_ERROR, retry_after=FULL_RETRY_AFTER)
        await full(scope, receive, send)

    @contextmanager
    def sse_stream(self) -> Iterator[None]:
        """Count an HTTP+SSE stream of this server (its session is the stream) while it is open, so that
        it takes a place in the table `max_sessions` bounds (see `full`)."""
        self._sse_streams += 1
        try:
            yield
        finally:
            self._sse_streams -= 1

    def _add(self, session_id: str, owner: AuthorizationContext | None) -> _Session:
        events = self._events(session_id)
        transport = StreamableHTTPServerTransport(
            mcp_session_id=session_id,
            event_store=events,
            security_settings=self._security,
            retry_interval=self._retry_interval,
        )
        session = self._sessions[session_id] = _Session(transport, events, owner)
        return session

    async def _serve(
        self,
        session_id: str,
        session: _Session,
        prepare: Callable[[Connection], None] | None,
        *,
        task_status: TaskStatus[Connection] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """The session's server task: serves its messages until it ends (DELETE, idle, end, crash),
        then tells `on_end` (whatever the session held beyond itself, such as subscriptions, goes)."""
        served: list[Connection] = []

        def ready(connection: Connection, link: SessionLink) -> None:
            served.append(connection)
            session.link = link
            if prepare is not None:
                prepare(connection)
            task_status.started(connection)

        try:
            async with session.transport.connect() as (read, write):
                with session.idle:
                    await serve_session(
                        self.app, read, write, lifespan_state=self._lifespan_state, session_id=session_id, ready=ready
                    )
                if session.idle.cancelled_caught:
                    log.info("a session ended after its idle timeout")
        except Exception:
            log.exception("a session crashed")
        finally:
            await self._discard(session_id, session)
            if served and self._on_end is not None:
                with anyio.CancelScope(shield=True):  # also when the manager stops (its task group cancelled)
                    try:
                        await self._on_end(served[0])
                    except Exception:
                        log.exception("could not release what an ended session held")

    async def _discard(self, session_id: str, session: _Session) -> None:
        """Forget the session (its id answers 404 from now on) and terminate its transport."""
        if self._sessions.get(session_id) is session:
            del self._sessions[session_id]
        if session.seat is not None and self._bounds is not None:
            self._bounds.leave(session.seat)
        if not session.transport.is_terminated:
            with anyio.CancelScope(shield=True):
                await session.transport.terminate()

    @contextmanager
    def _held(self, session: _Session, *, stream: bool = False) -> Iterator[None]:
        """A request in flight on the session: the idle countdown waits until none is."""
        session.in_flight += 1
        session.streams += stream
        session.idle.deadline = math.inf
        seat = session.seat
        if seat is not None:
            seat.busy = True
        try:
            yield
        finally:
            session.in_flight -= 1
            session.streams -= stream
            if not session.in_flight:
                now = anyio.current_time()
                if seat is not None:
                    seat.busy, seat.used = False, now
                if self._idle_timeout is not None:
                    session.idle.deadline = now + self._idle_timeout

    @contextmanager
    def hold(self, session_id: str) -> Iterator[None]:
        """Count a call served outside the transport (the fast path) as a request in flight."""
        session = self._sessions.get(session_id)
        if session is None:
            yield
            return
        with self._held(session):
            yield

    def _events(self, session_id: str) -> _SessionEvents | None:
        if self._events_for is None:
            return None
        return _SessionEvents(self._events_for(session_id), self._forward, partial(self.streams_here, session_id), session_id)

    def events_of(self, session_id: str) -> EventStore | None:
        """The session's event store, for answers streamed outside the SDK (web/fast_stream.py)."""
        session = self._sessions.get(session_id)
        return session.events if session is not None else self._events(session_id)

    def session_counts(self) -> tuple[int, int]:
        """(sessions open here, of which with their GET stream connected here), for metrics."""
        sessions = list(self._sessions.values())
        return len(sessions), sum(1 for s in sessions if s.streams)

    def streams_here(self, session_id: str) -> bool:
        """Whether the session's GET stream (its standalone channel) is connected to this replica."""
        session = self._sessions.get(session_id)
        return session is not None and session.streams > 0

    def streams_reachable(self, session_id: str) -> bool:
        """Whether a request for the session's GET stream may reach its caller: the stream is
        connected here, or (with replicas, which hand such a request on) may be to another."""
        return self.streams_here(session_id) or self._forward is not None

    async def to_stream(self, session_id: str, message: JSONRPCMessage, event_id: EventId | None) -> bool:
        """Send `message` on the session's GET stream if it is connected here; it keeps `event_id`,
        under which the replica that sent it stored it."""
        session = self._sessions.get(session_id)
        if session is None or not session.streams or session.link is None:
            return False
        stored = session.events.stored if session.events is not None and event_id is not None else None
        if stored is not None and event_id is not None:
            stored[id(message)] = (message, event_id)
        try:
            await session.link.to_client(message)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            if stored is not None:
                stored.pop(id(message), None)
            return False
        return True

    def admits(self, session_id: str) -> bool:
        """Whether a request may be served on `session_id` here now: not if it was chosen to make way
        for its caller's new session (the SDK path answers such a request 404)."""
        session = self._sessions.get(session_id)
        return session is not None and (session.seat is None or not session.seat.chosen)

    def holds(self, session_id: str) -> bool:
        """Whether this replica serves `session_id` now."""
        session = self._sessions.get(session_id)
        return session is not None and not session.transport.is_terminated

    def request_ids(self, session_id: str) -> RequestIds | None:
        """The ids of the client's requests in flight on session `session_id` here (None before it is served)."""
        session = self._sessions.get(session_id)
        return session.link.requests if session is not None and session.link is not None else None

    def transport(self, session_id: str) -> StreamableHTTPServerTransport | None:
        session = self._sessions.get(session_id)
        return session.transport if session is not None else None

    async def restore(
        self, session_id: str, prepare: Callable[[Connection], None], owner: AuthorizationContext | None = None
    ) -> Connection | None:
        """Recreate session `session_id` here for `owner`, its connection set up by `prepare` before
        it serves anything; None if the manager is not running."""
        if self._tg is None or self.holds(session_id):
            return None
        session = self._add(session_id, owner)
        try:
            connection: Connection = await self._tg.start(self._serve, session_id, session, prepare)
        except RuntimeError:  # the server task ended before it was ready (logged there)
            return None
        return connection

    async def count_restored(self, session_id: str, scope: Scope, receive: Receive, send: Send) -> bool:
        """Count session `session_id`, restored here from the shared store by the request `scope`,
        against its caller's bound; False when the request was answered (the caller is at its bound
        with every session in use: the session ends here, its record stays for a replica with room)."""
        session = self._sessions.get(session_id)
        if self._bounds is None or session is None or session.seat is not None:
            return True
        try:
            session.seat, victim = self._bounds.take(bound_holder(scope), partial(self._close, session_id))
        except TooManyRequests as exc:
            await self._discard(session_id, session)
            await too_many(exc, scope, receive, send)
            return False
        if victim is not None:
            await self._bounds.close(victim)
        return True

    async def _close(self, session_id: str) -> None:
        """End the session for its caller's newer one: here, then (`on_close`) on every replica."""
        session = self._sessions.get(session_id)
        if session is not None:
            await self._discard(session_id, session)
        if self._on_close is not None:
            await self._on_close(session_id)

    def spread_ids(self, session_id: str) -> None:
        """The session is shared between replicas: its server-to-client requests get ids spread over a
        40-bit range from here on, as a client's answer is routed by id alone."""
        session = self._sessions.get(session_id)
        if session is not None and session.link is not None:
            session.link.spread()

    def awaits_response(self, session_id: str, request_id: Any) -> bool:
        """Whether this replica's side of the session waits for the client's answer to `request_id`."""
        session = self._sessions.get(session_id)
        return session is not None and session.link is not None and session.link.awaits_response(request_id)

    async def deliver(self, session_id: str, message: JSONRPCResponse | JSONRPCError) -> None:
        """Feed the client's answer `message` to the session as if the client had POSTed it here."""
        session = self._sessions.get(session_id)
        if session is None or session.transport.is_terminated:
            return
        body = message.model_dump_json(by_alias=True, exclude_unset=True).encode()
        scope: Scope = {
            "type": "http",
            "method": "POST",
            "path": "/",
            "query_string": b"",
            "headers": [
                (b"host", b"localhost"),
                (b"content-type", b"application/json"),
                (b"accept", b"application/json, text/event-stream"),
                (b"mcp-session-id", session_id.encode()),
            ],
        }
        answered: list[int] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(reply: Message) -> None:
            if reply["type"] == "http.response.start":
                answered.append(reply["status"])

        await session.transport.handle_request(scope, receive, send)
        if answered != [202]:
            log.warning("a relayed answer was refused (HTTP %s)", answered)

    async def end(self, session_id: str) -> None:
        """End session `session_id` here (another replica deleted it): its id now answers 404."""
        session = self._sessions.get(session_id)
        if session is not None:
            await self._discard(session_id, session)


class _SessionEvents(EventStore):
    """A session's event store that also hands server-to-client requests meant for the GET stream to
    the replica holding that stream, when it is not here (the transport would only store them)."""

    def __init__(self, inner: EventStore, forward: Forward | None, streams_here: Callable[[], bool], session_id: str) -> None:
        self._inner = inner
        self._forward = forward
        self._streams_here = streams_here
        self._session_id = session_id
        self.stored: dict[int, tuple[JSONRPCMessage, EventId]] = {}
        """Messages relayed here for the GET stream, stored already by the replica that sent them: by
        identity, each kept (so its id is not reused) until the transport stores it."""

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        relayed = self.stored.pop(id(message), None)
        if relayed is not None and relayed[0] is message:
            return relayed[1]
        event_id = await self._inner.store_event(stream_id, message)
        forward = self._forward
        if (
            forward is not None
            and stream_id == GET_STREAM_KEY
            and isinstance(message, JSONRPCRequest)
            and not self._streams_here()
        ):
            await forward(self._session_id, message, event_id)
        return event_id

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        return await self._inner.replay_events_after(last_event_id, send_callback)


def session_owner(scope: Scope) -> AuthorizationContext | None:
    """Whose a request is, as sessions are bound to it (the authenticated user the edge set)."""
    user = scope.get("user")
    return authorization_context(user) if isinstance(user, AuthenticatedUser) else None


def mcp_headers(scope: Scope) -> tuple[str | None, str | None]:
    """The request's MCP-Protocol-Version and Mcp-Session-Id (first copies): every layer reads them
    here, so no two layers can act on different copies."""
    version = session_id = None
    for key, value in scope["headers"]:
        if key == b"mcp-protocol-version" and version is None:
            version = value.decode("latin-1")
        elif key == b"mcp-session-id" and session_id is None:
            session_id = value.decode("latin-1")
    return version, session_id


def _error_response(
    message: str,
    status_code: int,
    code: int = INVALID_REQUEST,
    *,
    retry_after: int | None = None,
    data: dict[str, Any] | None = None,
) -> Response:
    """A JSON-RPC error with no request id and the given HTTP status: the SDK's shape for these answers;
    with `retry_after`, a Retry-After header too."""
    error = ErrorData(code=code, message=message) if data is None else ErrorData(code=code, message=message, data=data)
    body = JSONRPCError(jsonrpc="2.0", id=None, error=error)
    return Response(
        body.model_dump_json(by_alias=True, exclude_unset=True),
        status_code=status_code,
        media_type="application/json",
        headers={"Retry-After": str(retry_after)} if retry_after is not None else None,
    )


async def too_many(exc: TooManyRequests, scope: Scope, receive: Receive, send: Send) -> None:
    """A session refused for its caller's bound: 429, a JSON-RPC error (`data` as `to_mcp_error` gives
    it) and, when the error says how long to wait, Retry-After."""
    retry_after = exc.extra.get("retry_after")
    retry_after = retry_after if isinstance(retry_after, int) else None
    data = {"type": type(exc).__name__, **exc.extra}
    await _error_response(exc.detail, exc.http_status, exc.jsonrpc_code, retry_after=retry_after, data=data)(
        scope, receive, send
    )


async def _issues(
    session_id: str, app: Callable[[Scope, Receive, Send], Awaitable[None]], scope: Scope, receive: Receive, send: Send
) -> bool:
    """Run `app` for one request; whether it answered 200 with `session_id` in its Mcp-Session-Id."""
    issued = False

    async def watch(message: Message) -> None:
        nonlocal issued
        if message["type"] == "http.response.start":
            headers = message.get("headers") or []
            issued = message["status"] == 200 and any(
                bytes(k).lower() == b"mcp-session-id" and bytes(v) == session_id.encode() for k, v in headers
            )
        await send(message)

    await app(scope, receive, watch)
    return issued


def repeated_header(scope: Scope, names: tuple[bytes, ...]) -> str | None:
    """The first of `names` (lower-case) that the request carries more than once, if any: layers that
    read the first copy and layers that read the last would otherwise act on different values."""
    seen: set[bytes] = set()
    for key, _ in scope["headers"]:
        if key in names:
            if key in seen:
                return bytes(key).decode("latin-1")
            seen.add(key)
    return None


async def invalid_request(message: str, scope: Scope, receive: Receive, send: Send) -> None:
    """A malformed request, answered 400 with a JSON-RPC error (id null), in the SDK's shape."""
    await _error_response(message, 400)(scope, receive, send)


async def session_not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """The answer for an unknown session id (as the SDK's manager gives it)."""
    await _error_response("Session not found", 404)(scope, receive, send)


async def store_unavailable(scope: Scope, receive: Receive, send: Send) -> None:
    """The session store could not be reached: a JSON-RPC error with 503, in the SDK's shape."""
    await _error_response("Session store unavailable", 503, INTERNAL_ERROR)(scope, receive, send)
