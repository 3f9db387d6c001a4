"""Usage buckets: counted in memory per call, written by this replica every few seconds.

Each replica writes only its own rows (see core/usage.py), so several replicas add up without
contending. A replica that dies loses what it counted since its last flush: at most
`flush_interval` seconds of calls (plus a flush in progress).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import anyio

from bastion.core.errors import BastionError
from bastion.core.observation import AUDITED_METHODS, CallRecord
from bastion.core.ports import UsageStore
from bastion.core.usage import GRANULARITIES, LATENCY_BOUNDS_MS, MAX_CALLERS, UsageRow, bucket_start, latency_index

log = logging.getLogger("bastion.usage")

Digest = Callable[[str], str]


@dataclass(slots=True)
class _Fresh:
    """What one item was used for in one minute since the last flush (callers not yet hashed)."""

    calls: int = 0
    errors: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BOUNDS_MS))
    callers: set[str] = field(default_factory=set)
    last: float = 0.0
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
        on_failed: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.writer = writer
        self._digest = digest
        self._flush_interval = flush_interval
        self._on_written = on_written
        self._on_failed = on_failed
        self._fresh: dict[tuple[int, str, str, str, str], _Fresh] = {}
        self._rows: dict[Key, UsageRow] = {}
        self._dirty: set[Key] = set()
        self._callers: dict[str, str] = {}
        self._lock = anyio.Lock()
        self.catch_up: Callable[[], None] = lambda: None
        """Called before each flush: tells this recorder of calls finished but not yet told (a batch)."""

    def call_finished(self, record: CallRecord) -> None:
        # Hot path: one dict lookup and a few increments; buckets, hashing and rollups wait for flush.
        if record.method not in AUDITED_METHODS or record.item is None:
            return
        end = record.started + record.seconds
        key = (int(end // 60), record.server, record.upstream or "", record.kind or "", record.item)
        fresh = self._fresh.get(key)
        if fresh is None:
            fresh = self._fresh[key] = _Fresh()
        fresh.calls += 1
        fresh.errors += record.outcome != "ok"
        fresh.latency[latency_index(record.seconds * 1000)] += 1
        if record.principal is not None:
            fresh.callers.add(record.principal)
        fresh.last = max(fresh.last, end)

    def _fold(self) -> None:
        """Add what was counted since the last flush into this writer's minute, hour and day rows."""
        fresh, self._fresh = self._fresh, {}
        for (minute, server, upstream, kind, item), counted in fresh.items():
            at = datetime.fromtimestamp(minute * 60, UTC)
            last = datetime.fromtimestamp(counted.last, UTC).isoformat()
            callers = {self._caller(c) for c in counted.callers}
            for granularity in GRANULARITIES:
                start = bucket_start(at, granularity).isoformat()
                key: Key = (granularity, start, server, upstream, kind, item)
                row = self._rows.get(key)
                if row is None:
                    row = self._rows[key] = UsageRow(granularity, start, self.writer, server, upstream, kind, item)
                row.calls += counted.calls
                row.errors += counted.errors
                row.latency = [a + b for a, b in zip(row.latency, counted.latency, strict=True)]
                row.callers |= set(list(callers)[: max(0, MAX_CALLERS - len(row.callers))])
                row.last_used = max(row.last_used, last)
                self._dirty.add(key)

    def _caller(self, principal: str) -> str:
        hashed = self._callers.get(principal)
        if hashed is None:
            if len(self._callers) > 10_000:
                self._callers.clear()
            hashed = self._callers[principal] = self._digest(principal)[:32]
        return hashed

    async def flush(self) -> int:
        self.catch_up()
        async with self._lock:
            self._fold()
            keys, self._dirty = self._dirty, set()
            rows = [replace(self._rows[k], latency=list(self._rows[k].latency), callers=set(self._rows[k].callers)) for k in keys]
            if not rows:
                return 0
            started = time.perf_counter()
            try:
                await self.store.save(rows)
            except BastionError as exc:
                self._dirty |= keys
                if self._on_failed is not None:
                    self._on_failed()
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
