"""A fast-path call's answer on a 2025-11-25 session: one JSON body, unless the upstream logs during
the call. Then, as directly, the answer is an SSE stream on the call's POST, resumable as on the SDK
path (SEP-1699): it opens with a priming event (an id, no data, the `retry` field), every event has an
id and is kept in the session's event store, and losing the connection does not cancel the call.

A client that lost the stream resumes it with GET + Last-Event-ID. While the call runs, the replica
running it serves that GET (`resume`): the stored events after the cursor, then the live ones, each
exactly once. Once the call has ended, or on another replica, the SDK replays the store (Redis makes
it every replica's), as for its own streams.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from mcp.server.streamable_http import EventMessage, EventStore
from mcp_types import JSONRPCError, JSONRPCResponse, jsonrpc_message_adapter
from mcp_types.version import is_version_at_least
from starlette.types import Message, Receive, Send

log = logging.getLogger("bastion.mcp")

RETRY_MS = 1000
"""How soon a 2025-11-25 client whose stream closed should reconnect (the SSE `retry` field), ms."""
_PRIMING_SINCE = "2025-11-25"  # older clients cannot parse an event without data (as in the SDK)
_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]

_Event = tuple[str | None, bytes, bool]
"""(event id, SSE frame, whether it is the call's reply: the stream's last event)."""


def _frame(data: bytes, event_id: str | None) -> bytes:
    head = b"event: message\n" if event_id is None else b"event: message\nid: " + event_id.encode() + b"\n"
    return head + b"data: " + data + b"\n\n"


def _body(frame: bytes, *, more: bool) -> Message:
    return {"type": "http.response.body", "body": frame, "more_body": more}


class CallStream:
    """One call's answer (see the module docstring); `send` is the ASGI `send` for its reply."""

    def __init__(
        self,
        send: Send,
        headers: list[tuple[bytes, bytes]],
        *,
        stream_id: str,
        protocol_version: str,
        events: Callable[[], EventStore | None],
        live: dict[str, CallStream],
    ) -> None:
        self._post, self._headers = send, headers
        self._stream_id, self._version = stream_id, protocol_version
        self._events_of, self._live = events, live
        self._events: EventStore | None = None
        self._lock: anyio.Lock | None = None
        """Created when the answer starts to stream: its events then go out one at a time, in order."""
        self._started = self._answered = self._post_done = False
        self._to_post = True
        """Whether events go to the POST: not once its client went away or a GET resumed the stream."""
        self._tail: MemoryObjectSendStream[_Event] | None = None

    @property
    def resumable(self) -> bool:
        """Whether the answer is a stream a client can resume: losing it then does not cancel the call."""
        return self._events is not None

    def detach(self) -> None:
        """The POST's client went away: keep the events for a resume."""
        self._to_post = False

    async def _start(self) -> None:
        self._started = True
        await self._post({"type": "http.response.start", "status": 200, "headers": [*_SSE_HEADERS, *self._headers]})
        self._events = self._events_of()
        if self._events is None:
            return
        self._live[self._stream_id] = self
        if is_version_at_least(self._version, _PRIMING_SINCE):
            event_id = await self._events.store_event(self._stream_id, None)
            await self._post(_body(b"id: " + event_id.encode() + b"\nretry: %d\ndata: \n\n" % RETRY_MS, more=True))

    async def log(self, params: dict[str, Any]) -> None:
        # The upstream client hands over a call's logs concurrently with its reply: once the reply is
        # out, a late log has nothing left to ride on.
        if self._answered:
            return
        if self._lock is None:
            self._lock = anyio.Lock()
        notification = {"jsonrpc": "2.0", "method": "notifications/message", "params": params}
        async with self._lock:
            if self._answered:
                return
            if not self._started:
                await self._start()
            await self._emit(json.dumps(notification, separators=(",", ":")).encode(), last=False)

    async def send(self, message: Message) -> None:
        """The ASGI `send` for the reply: as is, or as the stream's last event once it streams."""
        if self._lock is None:
            self._answered = True
            await self._post(message)
        elif message["type"] == "http.response.body":
            async with self._lock:
                self._answered = True
                if not self._started:
                    await self._start()
                await self._emit(message.get("body", b""), last=True)

    async def close(self) -> None:
        """After the reply: ends a stream that got none (the call was cancelled mid-stream)."""
        if self._lock is None or self._answered:
            return
        async with self._lock:
            self._answered = True
            if self._started:
                await self._end()

    async def _emit(self, data: bytes, *, last: bool) -> None:
        event_id = None
        if self._events is not None:
            event_id = await self._events.store_event(self._stream_id, jsonrpc_message_adapter.validate_json(data))
        event = (event_id, _frame(data, event_id), last)
        if self._tail is not None:
            try:
                self._tail.send_nowait(event)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._tail = None  # that resumed stream is gone too: the store keeps the event
        elif self._to_post:
            await self._post(_body(event[1], more=not last))
            self._post_done = last
        if last:
            await self._end()

    async def _end(self) -> None:
        if self._live.get(self._stream_id) is self:
            del self._live[self._stream_id]
        if self._tail is not None:
            self._tail.close()
        if not self._post_done:
            # The POST's response must still be finished (a no-op if its client is gone).
            await self._post(_body(b"", more=False))

    async def resume(self, last_event_id: str, receive: Receive, send: Send) -> None:
        """Serve a GET with `last_event_id` on this stream: the stored events after it, then the live
        ones until the reply. The newest resume takes the stream over from the POST or an older GET."""
        assert self._events is not None
        tail, events = anyio.create_memory_object_stream[_Event](math.inf)
        if self._tail is not None:
            self._tail.close()
        # Subscribed before the replay reads the store: an event stored meanwhile arrives both ways
        # and is sent once (by id); none falls between the two.
        self._tail, self._to_post = tail, False
        await send({"type": "http.response.start", "status": 200, "headers": [*_SSE_HEADERS, *self._headers]})
        await send(_body(b"retry: %d\n\n" % RETRY_MS, more=True))
        sent: set[str | None] = set()
        done = False

        async def replayed(event: EventMessage) -> None:
            nonlocal done
            data = event.message.model_dump_json(by_alias=True, exclude_unset=True).encode()
            sent.add(event.event_id)
            done = isinstance(event.message, JSONRPCResponse | JSONRPCError)
            await send(_body(_frame(data, event.event_id), more=True))

        async def watch_disconnect(cancel: anyio.CancelScope) -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            cancel.cancel()

        async def follow() -> None:
            nonlocal done
            while not done:
                try:
                    event_id, frame, done = await events.receive()
                except anyio.EndOfStream:
                    return  # a newer resume took the stream over, or the call ended
                if event_id not in sent:
                    await send(_body(frame, more=True))

        try:
            async with anyio.create_task_group() as tg, events:
                tg.start_soon(watch_disconnect, tg.cancel_scope)
                await self._events.replay_events_after(last_event_id, replayed)
                await follow()
                tg.cancel_scope.cancel()
        except Exception:  # the event store unreachable: the client may come back
            log.warning("could not resume a stream", exc_info=True)
        finally:
            if self._tail is tail:
                self._tail = None
        await send(_body(b"", more=False))
