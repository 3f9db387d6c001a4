"""Bastion's streams between a transport and the SDK dispatcher of one session, built on public API.

The SDK's transports hand out a read/write stream pair (`connect()`, `connect_sse()`,
`stdio_server()`); its `JSONRPCDispatcher` reads and writes them. Bastion puts a `SessionLink` in
between, which owns what Bastion needs of a session and the SDK keeps private:
- the session each handler serves (`current_connection()`, `session_state()`): set in the context
  each inbound message is handled in (the dispatcher runs a handler in its message's sender context,
  the `last_context` contract of the SDK's `ReadStream`);
- the ids of server-to-client requests on the wire: spread over a 40-bit range once the session is
  shared between replicas (a client's answer is routed by id alone), mapped back on the way in, and
  known while unanswered (`awaits_response`).
"""

from __future__ import annotations

import contextvars
import dataclasses
import secrets
from collections.abc import Callable
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Protocol, Self

import anyio
from mcp.server import Server
from mcp.server.connection import Connection
from mcp.server.models import InitializationOptions
from mcp.server.runner import serve_connection
from mcp.shared.dispatcher import coerce_request_id
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp.shared.transport_context import TransportContext
from mcp_types import JSONRPCError, JSONRPCMessage, JSONRPCNotification, JSONRPCRequest, JSONRPCResponse, RequestId

Serving = tuple[Connection | None, dict[str, Any]]
"""The session a message belongs to: its connection (None where the SDK keeps it, stdio), and its state."""

_SERVING: ContextVar[Serving | None] = ContextVar("bastion_session", default=None)
_INLINE = frozenset({"initialize"})
"""Handled before the next message is read, as the SDK's loop does: a client may pipeline its next request."""


class ReadStream(Protocol):
    """A transport's inbound side, as its `connect()` hands it out."""

    async def receive(self) -> SessionMessage | Exception: ...

    async def aclose(self) -> None: ...


class WriteStream(Protocol):
    """A transport's outbound side, as its `connect()` hands it out."""

    async def send(self, item: SessionMessage, /) -> None: ...

    async def aclose(self) -> None: ...


class ClosingStream:
    """A stream wrapper that is its own async context manager, closed with `aclose()`."""

    __slots__ = ()

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class WrappedReadStream(ClosingStream):
    """A read stream in front of a transport's, iterable as the SDK's streams are."""

    __slots__ = ()

    async def receive(self) -> SessionMessage | Exception:
        raise NotImplementedError

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None


def current_connection() -> Connection | None:
    """The connection of the 2025-11-25 session whose message is being handled (None outside one)."""
    serving = _SERVING.get()
    return serving[0] if serving is not None else None


def session_connection() -> Connection:
    """The connection of the 2025-11-25 session whose message is being handled, where Bastion serves it."""
    connection = current_connection()
    if connection is None:
        raise RuntimeError("no 2025-11-25 session of Bastion's is being served here")
    return connection


def session_state() -> dict[str, Any]:
    """The state of the 2025-11-25 session whose message is being handled."""
    serving = _SERVING.get()
    if serving is None:
        raise RuntimeError("no 2025-11-25 session is being served here")
    return serving[1]


HELD_BY_POST = "bastion.request_held"
"""Set in a POST's scope whose request's id it holds for the dispatcher to release (HTTP+SSE)."""


class RequestIds:
    """The ids of a session's client requests in flight, as the dispatcher correlates them
    (`coerce_request_id`: "7" and 7 are one id). Each holder counts: the POST that brings a request
    (from before the transport sees it until the POST ends) and the dispatcher (from reading it
    until its answer is written, or it settles unanswered); an HTTP+SSE POST, answered 202 before
    the request is handed on, leaves its hold to the dispatcher (`HELD_BY_POST`). The SDK keys a
    Streamable HTTP request's stream and its answer by id alone, so a second request with an id in
    flight would take the first one's; on HTTP+SSE both answers would carry one id."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: dict[RequestId, int] = {}

    def claim(self, request_id: RequestId) -> bool:
        """Hold `request_id` for a POST that brings it; False (nothing held) if it is in flight."""
        key = coerce_request_id(request_id)
        if key in self._held:
            return False
        self._held[key] = 1
        return True

    def hold(self, request_id: RequestId) -> None:
        key = coerce_request_id(request_id)
        self._held[key] = self._held.get(key, 0) + 1

    def release(self, request_id: RequestId) -> None:
        key = coerce_request_id(request_id)
        count = self._held.get(key)
        if count is not None and count > 1:
            self._held[key] = count - 1
        elif count is not None:
            del self._held[key]


class SessionLink:
    """One session's streams between its transport (`read`, `write`) and its dispatcher
    (`inbound`, `outbound`)."""

    __slots__ = ("_asked", "_next_id", "_write", "inbound", "outbound", "requests", "serving")

    def __init__(self, read: ReadStream, write: WriteStream) -> None:
        self._write = write
        self.requests = RequestIds()
        """The client's requests in flight on the session (POSTs check theirs against it)."""
        self.inbound = _Inbound(self, read)
        self.outbound = _Outbound(self, write)
        self.serving: Serving = (None, {})
        self._asked: dict[RequestId, RequestId] = {}
        """Unanswered server-to-client requests: wire id (coerced) -> the dispatcher's own id."""
        self._next_id: int | None = None

    def bind(self, connection: Connection | None, state: dict[str, Any] | None = None) -> None:
        """Handle every inbound message as part of this session."""
        self.serving = (connection, state if state is not None else connection.state if connection else {})

    def spread(self) -> None:
        """From now on, give server-to-client requests wire ids from a random point of a 40-bit range."""
        if self._next_id is None:
            self._next_id = secrets.randbelow(2**40)

    def awaits_response(self, request_id: Any) -> bool:
        """Whether this session waits for the client's answer to the request with wire id `request_id`."""
        return isinstance(request_id, str | int) and coerce_request_id(request_id) in self._asked

    async def to_client(self, message: JSONRPCMessage) -> None:
        """Send `message` to the client outside any request (the transport routes it to the GET stream)."""
        await self._write.send(SessionMessage(message))

    def answered(self, item: SessionMessage | Exception) -> SessionMessage | Exception:
        """The client's inbound `item` with the id of an answer as the dispatcher asked it; a
        request is held in `requests` until it is answered or settles unanswered."""
        if not isinstance(item, SessionMessage):
            return item
        message = item.message
        if isinstance(message, JSONRPCRequest):
            return self._held(item, message.id)
        if not isinstance(message, JSONRPCResponse | JSONRPCError) or message.id is None:
            return item
        own = self._asked.pop(coerce_request_id(message.id), None)
        if own is None or own == message.id:
            return item
        return SessionMessage(message.model_copy(update={"id": own}), metadata=item.metadata)

    def _held(self, item: SessionMessage, request_id: RequestId) -> SessionMessage:
        """Hold the inbound request `request_id` while the dispatcher has it: released by its answer
        (`asking`), or by the hook the dispatcher runs when it settles unanswered (a cancel)."""
        metadata = item.metadata
        if not isinstance(metadata, ServerMessageMetadata):
            return item  # no hook to hear of an unanswered settle: not held, rather than held forever
        scope = getattr(metadata.request_context, "scope", None)
        if not (isinstance(scope, dict) and scope.get(HELD_BY_POST) is True):
            self.requests.hold(request_id)
        # else: the POST that brought it holds it (an HTTP+SSE POST, answered before the request is
        # handed on); the dispatcher takes that hold over.
        transports = metadata.on_request_unanswered

        async def unanswered() -> None:
            self.requests.release(request_id)
            if transports is not None:
                await transports()

        return SessionMessage(item.message, metadata=dataclasses.replace(metadata, on_request_unanswered=unanswered))

    def asking(self, item: SessionMessage) -> SessionMessage:
        """The dispatcher's outbound `item` with its request id as the client is to see it (an
        answer releases the client's request from `requests`)."""
        message = item.message
        if isinstance(message, JSONRPCResponse | JSONRPCError):
            if message.id is not None:
                self.requests.release(message.id)
        elif isinstance(message, JSONRPCRequest):
            wire: RequestId = message.id
            if self._next_id is not None:
                wire, self._next_id = self._next_id, self._next_id + 1
            self._asked[coerce_request_id(wire)] = message.id
            if wire != message.id:
                return SessionMessage(message.model_copy(update={"id": wire}), metadata=item.metadata)
        elif isinstance(message, JSONRPCNotification) and message.method == "notifications/cancelled":
            params = message.params or {}
            own = params.get("requestId")
            wire_of = next((w for w, o in self._asked.items() if o == own), None)
            if wire_of is not None:
                del self._asked[wire_of]
                if wire_of != own:
                    params = {**params, "requestId": wire_of}
                    return SessionMessage(message.model_copy(update={"params": params}), metadata=item.metadata)
        return item


class _Inbound(WrappedReadStream):
    """The dispatcher's read stream: the transport's, each message handled in its sender's context
    (the `last_context` contract of the SDK's read streams) with the session set in it."""

    __slots__ = ("_link", "_stream", "last_context")

    def __init__(self, link: SessionLink, stream: ReadStream) -> None:
        self._link = link
        self._stream = stream
        self.last_context: contextvars.Context | None = None

    async def receive(self) -> SessionMessage | Exception:
        item = await self._stream.receive()
        # Each message's sender context is a copy of its own, made when it was sent: set here, the
        # session reaches that message's handler and nothing else.
        context = getattr(self._stream, "last_context", None) or contextvars.copy_context()
        context.run(_SERVING.set, self._link.serving)
        self.last_context = context
        return self._link.answered(item)

    async def aclose(self) -> None:
        await self._stream.aclose()


class _Outbound(ClosingStream):
    """The dispatcher's write stream: the transport's, with request ids rewritten for the wire."""

    __slots__ = ("_link", "_stream")

    def __init__(self, link: SessionLink, stream: WriteStream) -> None:
        self._link = link
        self._stream = stream

    async def send(self, item: SessionMessage, /) -> None:
        await self._stream.send(self._link.asking(item))

    async def aclose(self) -> None:
        await self._stream.aclose()


async def serve_session(
    server: Server[Any],
    read: ReadStream,
    write: WriteStream,
    *,
    lifespan_state: Any,
    session_id: str | None = None,
    init_options: InitializationOptions | None = None,
    ready: Callable[[Connection, SessionLink], None] | None = None,
) -> None:
    """Serve one 2025-11-25 session over a transport's stream pair until it closes, as the SDK's
    `serve_loop` does, with a `SessionLink` between; `ready` sees the session before anything is served."""
    link = SessionLink(read, write)
    dispatcher: JSONRPCDispatcher[TransportContext] = JSONRPCDispatcher(
        link.inbound, link.outbound, inline_methods=_INLINE
    )
    connection = Connection.for_loop(dispatcher, session_id=session_id)
    link.bind(connection)
    if ready is not None:
        ready(connection, link)
    await serve_connection(server, dispatcher, connection=connection, lifespan_state=lifespan_state, init_options=init_options)
