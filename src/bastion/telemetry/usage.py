"""Usage buckets: counted in memory per call, written by this replica every few seconds.

Each replica writes only its own rows (see core/usage.py), so several replicas add up without
contending. A replica that dies loses what it counted since its last flush: at most
`flush_interval` seconds of calls (plus a flush in progress).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import anyio

from bastion.core.errors import BastionError
from bastion.core.observation import AUDITED_METHODS, CallRecord
from bastion.core.ports import UsageStore
from bastion.core.usage import GRANULARITIES, UsageRow, bucket_start

log = logging.getLogger("bastion.usage")

Digest = Callable[[str], str]
Key = tuple[str, str, str, str, str, str]


class UsageRecorder:
    """A CallObserver that counts calls, errors, latency and callers per item and time bucket."""

    def __init__(
        self,
        store: UsageStore,
        writer: str,
        digest: Digest,
        *,
        flush_interval: float = 5.0,
        on_written: Callable[[int, float], None] | None = None,
    ) -> None:
        self.store = store
        self.writer = writer
        self._digest = digest
        self._flush_interval = flush_interval
        self._on_written = on_written
        self._rows: dict[Key, UsageRow] = {}
        self._dirty: set[Key] = set()
        self._callers: dict[str, str] = {}
        self._lock = anyio.Lock()

    def call_finished(self, record: CallRecord) -> None:
        if record.method not in AUDITED_METHODS or record.item is None:
            return
        end = record.started + record.seconds
        at = datetime.fromtimestamp(end, UTC)
        stamp = at.isoformat()
        caller = record.principal
        hashed = None
        if caller is not None:
            hashed = self._callers.get(caller)
            if hashed is None:
                if len(self._callers) > 10_000:
                    self._callers.clear()
                hashed = self._callers[caller] = self._digest(caller)[:32]
        ok = record.outcome == "ok"
        for granularity in GRANULARITIES:
            start = bucket_start(at, granularity).isoformat()
            key: Key = (granularity, start, record.server, record.upstream or "", record.kind or "", record.item)
            row = self._rows.get(key)
            if row is None:
                row = self._rows[key] = UsageRow(granularity, start, self.writer, *key[2:])
            row.add(ok, record.seconds * 1000, hashed, stamp)
            self._dirty.add(key)

    async def flush(self) -> int:
        async with self._lock:
            keys, self._dirty = self._dirty, set()
            rows = [replace(self._rows[k], latency=list(self._rows[k].latency), callers=set(self._rows[k].callers)) for k in keys]
            if not rows:
                return 0
            started = time.perf_counter()
            try:
                await self.store.save(rows)
            except BastionError as exc:
                self._dirty |= keys
                log.warning("usage not written, will retry: %s", exc.detail)
                return 0
            if self._on_written is not None:
                self._on_written(len(rows), time.perf_counter() - started)
            self._forget_past()
            return len(rows)

    def _forget_past(self) -> None:
        """Rows of finished buckets are written for good; keep memory to the current ones."""
        now = datetime.now(UTC)
        current = {g: bucket_start(now - timedelta(seconds=60), g).isoformat() for g in GRANULARITIES}
        for key in [k for k in self._rows if k not in self._dirty and k[1] < current[k[0]]]:
            del self._rows[key]

    async def run(self) -> None:
        while True:
            await anyio.sleep(self._flush_interval)
            await self.flush()

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.flush()
