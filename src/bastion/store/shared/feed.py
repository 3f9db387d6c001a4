"""The change feed over Redis pub/sub, with a config version that catches missed messages.

Pub/sub delivers at most once: a replica that was disconnected misses what was said meanwhile.
So every change also bumps a counter; a replica reloads whenever the counter is ahead of what it
has seen (checked on every (re)connect and every few seconds), not only when told.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
from redis.asyncio import Redis

from bastion.core.ports import ChangeHandler, RevokeHandler, RootsHandler
from bastion.store.shared.client import REDIS_ERRORS

log = logging.getLogger("bastion.redis")

_BACKOFF_MAX = 5.0


class RedisChangeFeed:
    def __init__(self, redis: Redis, prefix: str, replica: str, *, resync_interval: float = 5.0) -> None:
        self._redis = redis
        self._channel = f"{prefix}:changes"
        self._version_key = f"{prefix}:config-version"
        self._replica = replica
        self._resync = resync_interval
        self._seen = 0
        # A change made while Redis was down: announce it once Redis is back.
        self._pending = False
        self._roots_unsent = False
        self.connected = anyio.Event()
        """Set once the feed is subscribed (tests wait on it rather than sleeping)."""

    async def publish_change(self) -> None:
        try:
            version = int(await self._redis.incr(self._version_key))
            self._seen = max(self._seen, version)
            await self._send({"kind": "change", "version": version})
            self._pending = False
        except REDIS_ERRORS as exc:
            self._pending = True
            log.warning("could not announce a configuration change (Redis: %s); will later", type(exc).__name__)

    async def publish_revocation(self, token_id: str) -> None:
        try:
            await self._send({"kind": "revoke", "token": token_id})
        except REDIS_ERRORS as exc:
            # The shared revoked-ids list (and the store) still refuse it; this only clears caches early.
            log.warning("could not announce a token revocation (Redis: %s)", type(exc).__name__)

    async def publish_roots(self, caller: str) -> None:
        try:
            await self._send({"kind": "roots", "caller": caller})
            self._roots_unsent = False
        except REDIS_ERRORS as exc:
            # Said once until an announcement gets through again, not for every notice meanwhile.
            if not self._roots_unsent:
                log.warning("could not announce a caller's changed roots (Redis: %s)", type(exc).__name__)
            self._roots_unsent = True

    async def _send(self, message: dict[str, Any]) -> None:
        await self._redis.publish(self._channel, json.dumps({**message, "from": self._replica}))

    async def run(self, on_change: ChangeHandler, on_revoke: RevokeHandler, on_roots: RootsHandler | None = None) -> None:
        """Listen until cancelled, reconnecting with backoff while Redis is away."""
        delay = 0.1
        while True:
            try:
                await self._listen(on_change, on_revoke, on_roots)
            except REDIS_ERRORS as exc:
                log.warning("change feed lost Redis (%s); reconnecting", type(exc).__name__)
            except Exception:
                log.exception("change feed failed; reconnecting")
            if self.connected.is_set():
                self.connected = anyio.Event()
                delay = 0.1
            await anyio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX)

    async def _listen(self, on_change: ChangeHandler, on_revoke: RevokeHandler, on_roots: RootsHandler | None) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self._channel)
            if self._pending:
                await self.publish_change()
            # Subscribed: from here on nothing is missed; reload for whatever happened before.
            self._seen = await self._version()
            await self._reload(on_change)
            self.connected.set()
            while True:
                message = await pubsub.get_message(timeout=self._resync)
                if message is None:
                    await self._catch_up(on_change)
                elif message.get("type") == "message":
                    await self._handle(message["data"], on_change, on_revoke, on_roots)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await pubsub.aclose()

    async def _version(self) -> int:
        value = await self._redis.get(self._version_key)
        return int(value) if value is not None else 0

    async def _catch_up(self, on_change: ChangeHandler) -> None:
        version = await self._version()
        if version != self._seen:  # ahead, or behind after Redis lost its data: reload either way
            self._seen = version
            await self._reload(on_change)

    async def _handle(
        self, data: bytes, on_change: ChangeHandler, on_revoke: RevokeHandler, on_roots: RootsHandler | None
    ) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            log.warning("ignoring a malformed change-feed message")
            return
        if not isinstance(message, dict) or message.get("from") == self._replica:
            return
        if message.get("kind") == "revoke" and isinstance(message.get("token"), str):
            try:
                await on_revoke(message["token"])
            except Exception:
                log.exception("dropping a revoked token from the cache failed")
        elif message.get("kind") == "roots" and isinstance(message.get("caller"), str):
            if on_roots is not None:
                try:
                    await on_roots(message["caller"])
                except Exception:
                    log.exception("ending a caller's own upstream sessions after its roots changed failed")
        elif message.get("kind") == "change":
            version = message.get("version")
            if isinstance(version, int):
                self._seen = max(self._seen, version)
            await self._reload(on_change)

    async def _reload(self, on_change: ChangeHandler) -> None:
        try:
            await on_change()
        except Exception:
            # E.g. the database briefly unreachable: forget what we saw, so the next check reloads.
            log.exception("reloading configuration after a change failed; will retry")
            self._seen = -1
