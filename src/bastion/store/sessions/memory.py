"""The in-process session store: one replica, records kept (unsealed) in a dict with idle expiry."""

from __future__ import annotations

import time

from bastion.core.ports import SessionChanged, SessionKey, SessionRecord, SessionRelayed
from bastion.store.sessions.keys import SessionKeys


class MemorySessionStore:
    replicated = False  # one process: what a replica would relay, no other replica takes

    def __init__(self, keys: SessionKeys, idle_ttl: float) -> None:
        self._keys = keys
        self._ttl = idle_ttl
        self._records: dict[str, tuple[SessionRecord, float]] = {}
        self._writes = 0

    def address(self, key: SessionKey) -> str:
        return self._keys.address(key)

    async def load(self, key: SessionKey) -> SessionRecord | None:
        address = self.address(key)
        held = self._records.get(address)
        if held is None:
            return None
        if held[1] < time.monotonic():
            del self._records[address]
            return None
        return held[0]

    async def save(self, key: SessionKey, record: SessionRecord) -> None:
        now = time.monotonic()
        self._writes += 1
        if self._writes % 1024 == 0:
            # Sessions never resumed must not cost memory for ever; sweeping now and then is enough.
            self._records = {a: r for a, r in self._records.items() if r[1] >= now}
        self._records[self.address(key)] = (record, now + self._ttl)

    async def touch(self, key: SessionKey) -> None:
        address = self.address(key)
        held = self._records.get(address)
        if held is not None:
            self._records[address] = (held[0], time.monotonic() + self._ttl)

    async def delete(self, key: SessionKey) -> None:
        self._records.pop(self.address(key), None)

    async def relay(self, address: str, payload: bytes) -> None:
        """One process: the session's only holder is this one, which already has the message."""
        return

    async def watch(self, on_change: SessionChanged, on_relayed: SessionRelayed) -> None:
        """One process: no other replica changes records or relays messages."""
        return
