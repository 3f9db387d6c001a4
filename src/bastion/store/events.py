"""An in-process event store for 2025-11-25 streams: priming events and Last-Event-ID replay.

Bounded: each stream keeps its newest `per_stream` events and the store its newest `streams`
streams, so a client that never comes back costs a fixed amount. Each session sees only its own
streams (`for_session`). Replay across replicas needs the Redis store (store/sessions/redis.py);
this one serves a client that reconnects to the same process.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque

from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp_types import JSONRPCMessage

from bastion.core.values import small_int


class MemoryEventStore(EventStore):
    def __init__(self, *, per_stream: int = 256, streams: int = 10_000) -> None:
        self._per_stream = per_stream
        self._max_streams = streams
        self._streams: OrderedDict[StreamId, deque[tuple[int, JSONRPCMessage | None]]] = OrderedDict()
        self._seq = itertools.count(1)

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        events = self._streams.get(stream_id)
        if events is None:
            events = self._streams[stream_id] = deque(maxlen=self._per_stream)
            while len(self._streams) > self._max_streams:
                self._streams.popitem(last=False)
        else:
            self._streams.move_to_end(stream_id)
        seq = next(self._seq)
        events.append((seq, message))
        return f"{stream_id}/{seq}"

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        stream_id, _, seq_text = last_event_id.rpartition("/")
        events = self._streams.get(stream_id)
        after = small_int(seq_text, 20)  # ASCII digits, as few as ours have
        if events is None or after is None:
            return None
        for seq, message in list(events):
            if seq > after and message is not None:
                await send_callback(EventMessage(message, f"{stream_id}/{seq}"))
        return stream_id

    def for_session(self, session_id: str) -> EventStore:
        """The view of one session: its SSE stream ids (request ids, the GET stream) are its own."""
        return _SessionEvents(self, session_id)


class _SessionEvents(EventStore):
    def __init__(self, store: MemoryEventStore, session_id: str) -> None:
        self._store = store
        self._prefix = f"{session_id}:"

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        return (await self._store.store_event(self._prefix + stream_id, message)).removeprefix(self._prefix)

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        async def unscoped(event: EventMessage) -> None:
            event_id = event.event_id.removeprefix(self._prefix) if event.event_id else None
            await send_callback(EventMessage(event.message, event_id))

        stream = await self._store.replay_events_after(self._prefix + last_event_id, unscoped)
        return stream.removeprefix(self._prefix) if stream is not None else None
