"""Async facade calls as every replica sees them, in Redis: the replica running a call keeps its
record current (state, progress, question, result, and a lease it renews while it runs); any
replica answers the call's status and events from it and queues the caller's answers for the one
running it. Keys are hashes of the call ids and records are sealed (AES-GCM, bound to the call), so
Redis holds neither an id that would reach a call nor anything the call carried."""

from __future__ import annotations

import hashlib
from typing import Any

from redis.asyncio import Redis

from bastion.store.shared.client import REDIS_ERRORS, unavailable
from bastion.vault.crypto import Sealer, SealError


class RedisCallBoard:
    def __init__(self, redis: Redis, prefix: str, sealer: Sealer) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:call:"
        self._sealer = sealer

    def _key(self, call_id: str) -> str:
        return self._prefix + hashlib.sha256(call_id.encode()).hexdigest()

    @staticmethod
    def _context(call_id: str, what: str) -> str:
        return f"bastion facade call {what}|{call_id}"

    async def put(self, call_id: str, record: dict[str, Any], ttl: float) -> None:
        sealed = self._sealer.seal(record, self._context(call_id, "record"))
        try:
            await self._redis.set(self._key(call_id), sealed, px=max(1, int(ttl * 1000)))
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from None

    async def get(self, call_id: str) -> dict[str, Any] | None:
        try:
            raw = await self._redis.get(self._key(call_id))
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from None
        return self._open(raw, call_id, "record")

    async def answer(self, call_id: str, answer: dict[str, Any], ttl: float) -> None:
        key = self._key(call_id) + ":answers"
        sealed = self._sealer.seal(answer, self._context(call_id, "answer"))
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.rpush(key, sealed)
                pipe.pexpire(key, max(1, int(ttl * 1000)))
                await pipe.execute()
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from None

    async def take_answer(self, call_id: str) -> dict[str, Any] | None:
        try:
            raw = await self._redis.lpop(self._key(call_id) + ":answers")
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from None
        return self._open(raw, call_id, "answer")

    async def forget(self, call_id: str) -> None:
        key = self._key(call_id)
        try:
            await self._redis.delete(key, key + ":answers")
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from None

    def _open(self, raw: Any, call_id: str, what: str) -> dict[str, Any] | None:
        if raw is None:
            return None
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        try:
            return self._sealer.unseal(text, self._context(call_id, what))
        except SealError:
            return None
