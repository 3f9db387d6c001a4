"""Session records and resumable event streams in Redis, shared by every replica.

Records: one sealed value per session (SET with an idle TTL, refreshed by `touch`); every save or
delete is announced on one pub/sub channel (the record's opaque address) so replicas holding the
session apply it. Events: one Redis stream per (session, SSE stream), capped (XADD MAXLEN) and
expiring, each event sealed under a key derived from the state key and the session id.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import anyio
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp_types import JSONRPCMessage, jsonrpc_message_adapter
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bastion.core.ports import SessionChanged, SessionKey, SessionRecord, SessionRelayed
from bastion.core.values import small_int
from bastion.store.sessions.keys import SessionKeys

log = logging.getLogger("bastion.sessions")
_NONCE = 12
_U64_MAX = 2**64 - 1
_LAST_ENTRY_ID = f"{_U64_MAX}-{_U64_MAX}"
# How long one pub/sub read waits for a message before asking again (and health-checking).
_LISTEN_WAIT = 5.0


class RedisSessionStore:
    replicated = True

    def __init__(self, redis: Redis, prefix: str, keys: SessionKeys, idle_ttl: float) -> None:
        self._redis = redis
        self._keys = keys
        self._prefix = prefix
        self._ttl_ms = max(1, int(idle_ttl * 1000))
        self._channel = f"{prefix}:sessions:changed"
        self._relay_channel = f"{prefix}:sessions:relay"

    def address(self, key: SessionKey) -> str:
        return self._keys.address(key)

    def _name(self, key: SessionKey) -> str:
        return f"{self._prefix}:session:{self.address(key)}"

    async def load(self, key: SessionKey) -> SessionRecord | None:
        sealed = await self._redis.get(self._name(key))
        return self._keys.open_record(key, sealed) if isinstance(sealed, bytes) else None

    async def save(self, key: SessionKey, record: SessionRecord) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._name(key), self._keys.seal_record(key, record), px=self._ttl_ms)
            pipe.publish(self._channel, self.address(key))
            await pipe.execute()

    async def touch(self, key: SessionKey) -> None:
        await self._redis.pexpire(self._name(key), self._ttl_ms)

    async def delete(self, key: SessionKey) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._name(key))
            pipe.publish(self._channel, self.address(key))
            await pipe.execute()

    async def relay(self, address: str, payload: bytes) -> None:
        await self._redis.publish(self._relay_channel, address.encode() + b"\n" + payload)

    async def watch(self, on_change: SessionChanged, on_relayed: SessionRelayed) -> None:
        """Follow the change and relay channels, reconnecting (with backoff) while Redis is away.

        Reads wait with an explicit timeout, not the client's short socket timeout (the client is
        shared with calls that must fail fast): a quiet channel is not a dead connection."""
        delay = 0.5
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self._channel, self._relay_channel)
                    delay = 0.5
                    while True:
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=_LISTEN_WAIT)
                        if message is not None:
                            await self._apply(message, on_change, on_relayed)
            except (RedisError, OSError) as exc:
                log.warning("session change feed interrupted (%s); retrying", type(exc).__name__)
            await anyio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _apply(self, message: dict[str, Any], on_change: SessionChanged, on_relayed: SessionRelayed) -> None:
        data = message.get("data")
        if message.get("type") != "message" or not isinstance(data, bytes):
            return
        try:
            if message.get("channel") == self._relay_channel.encode():
                address, _, payload = data.partition(b"\n")
                await on_relayed(address.decode(), payload)
            else:
                await on_change(data.decode())
        except (RedisError, OSError):
            raise
        except Exception:  # one bad message must not stop the feed
            log.exception("could not apply a session change")


class RedisEventStore:
    """Per-session SDK event stores over Redis streams: bounded, expiring, sealed."""

    def __init__(
        self, redis: Redis, prefix: str, keys: SessionKeys, *, per_stream: int = 256, ttl: float = 3600
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._keys = keys
        self._per_stream = per_stream
        self._ttl_ms = max(1, int(ttl * 1000))

    def for_session(self, session_id: str) -> EventStore:
        name, cipher = self._keys.stream_cipher(session_id)
        return _SessionEvents(self, f"{self._prefix}:events:{name}", cipher)

    async def append(self, stream: str, data: bytes) -> str:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(stream, {b"m": data}, maxlen=self._per_stream, approximate=False)
            pipe.pexpire(stream, self._ttl_ms)
            entry_id, _ = await pipe.execute()
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    async def after(self, stream: str, entry_id: str) -> list[tuple[str, bytes]] | None:
        """The entries after `entry_id`, or None when the stream is gone (expired, never was)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(stream)
            pipe.xrange(stream, min=f"({entry_id}", max="+")
            exists, entries = await pipe.execute()
        if not exists:
            return None
        out: list[tuple[str, bytes]] = []
        for raw_id, fields in entries:
            out.append((raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id), fields.get(b"m", b"")))
        return out


def _valid_entry_id(text: str) -> bool:
    """Whether `text` is an entry id XRANGE can start after: `<ms>-<seq>`, each ASCII digits of 64
    bits at most, and not the last id there is (`str.isdigit` is true of `²` too, which Redis refuses)."""
    ms_text, dash, seq_text = text.partition("-")
    ms, seq = small_int(ms_text, 20), small_int(seq_text, 20)
    return bool(dash) and ms is not None and seq is not None and max(ms, seq) <= _U64_MAX and text != _LAST_ENTRY_ID


class _SessionEvents(EventStore):
    """One session's events; event ids are `<SSE stream>/<Redis entry id>`."""

    def __init__(self, store: RedisEventStore, name: str, cipher: AESGCM) -> None:
        self._store = store
        self._name = name
        self._cipher = cipher

    def _stream(self, stream_id: StreamId) -> str:
        return f"{self._name}:{stream_id}"

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        plain = (
            b"" if message is None else jsonrpc_message_adapter.dump_json(message, by_alias=True, exclude_unset=True)
        )
        nonce = os.urandom(_NONCE)
        stream = self._stream(stream_id)
        sealed = nonce + self._cipher.encrypt(nonce, plain, stream.encode())
        return f"{stream_id}/{await self._store.append(stream, sealed)}"

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        stream_id, _, entry_id = last_event_id.rpartition("/")
        if not stream_id or not _valid_entry_id(entry_id):
            return None
        stream = self._stream(stream_id)
        entries = await self._store.after(stream, entry_id)
        if entries is None:
            return None
        for event_id, sealed in entries:
            message = self._open(stream, sealed)
            if message is not None:
                await send_callback(EventMessage(message, f"{stream_id}/{event_id}"))
        return stream_id

    def _open(self, stream: str, sealed: bytes) -> JSONRPCMessage | None:
        try:
            plain = self._cipher.decrypt(sealed[:_NONCE], sealed[_NONCE:], stream.encode())
        except (InvalidTag, ValueError):
            log.warning("an event of a session stream did not open; skipped")
            return None
        if not plain:
            return None  # a priming event: a cursor, nothing to send
        try:
            message: Any = jsonrpc_message_adapter.validate_json(plain, by_name=False)
        except ValidationError:
            return None
        return message  # type: ignore[no-any-return]
