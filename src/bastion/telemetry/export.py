"""Streaming export of the audit log to a SIEM: JSON lines appended to a file, or POSTed in batches
to an HTTP endpoint (application/x-ndjson), retried with backoff.

Records are queued once they are stored (the database stays the source of truth); the queue is
bounded, and what overflows it is counted (metric) and itself audited. A batch that cannot be
delivered stays at the head of the queue and is retried; newer records wait behind it.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import httpx2

from bastion.core.audit_chain import AuditEntry, entry_values

log = logging.getLogger("bastion.audit.export")

_BACKOFF_CAP = 30.0


def lines(entries: Sequence[AuditEntry]) -> bytes:
    return b"".join(json.dumps(entry_values(e), ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for e in entries)


class AuditExport:
    """Queue of stored audit records on their way to a file or an HTTP endpoint."""

    def __init__(
        self,
        *,
        file: Path | None = None,
        url: str | None = None,
        token: str | None = None,
        max_queue: int = 10_000,
        batch: int = 500,
        interval: float = 1.0,
        on_dropped: Callable[[int], None] | None = None,
        on_overflow: Callable[[int], None] | None = None,
    ) -> None:
        if (file is None) == (url is None):
            raise ValueError("export to a file or to a URL, one of them")
        self._file = file
        self._url = url
        self._headers = {"content-type": "application/x-ndjson"} | ({"authorization": f"Bearer {token}"} if token else {})
        self._queue: deque[AuditEntry] = deque()
        self._max_queue = max_queue
        self._batch = batch
        self._interval = interval
        self._on_dropped = on_dropped
        self._on_overflow = on_overflow
        self._dropped = 0
        self._ready = anyio.Event()
        self.sent = 0
        self.failures = 0

    def offer(self, entries: Sequence[AuditEntry]) -> None:
        """Queue stored records (AuditLog listener); what does not fit is counted and reported."""
        room = self._max_queue - len(self._queue)
        self._queue.extend(entries[: max(room, 0)])
        dropped = len(entries) - max(room, 0)
        if dropped > 0:
            self._dropped += dropped
            if self._on_dropped is not None:
                self._on_dropped(dropped)
        self._ready.set()

    async def _deliver(self, batch: list[AuditEntry], http: httpx2.AsyncClient | None) -> None:
        body = lines(batch)
        if self._file is not None:
            def append() -> None:
                assert self._file is not None
                with self._file.open("ab") as out:
                    out.write(body)

            await anyio.to_thread.run_sync(append)
            return
        assert http is not None and self._url is not None
        response = await http.post(self._url, content=body, headers=self._headers)
        if response.status_code >= 300:
            raise OSError(f"the SIEM endpoint answered HTTP {response.status_code}")

    async def drain(self, http: httpx2.AsyncClient | None = None) -> None:
        """Send everything queued now (raises on a failed batch, which stays queued)."""
        while self._queue:
            batch = [self._queue[i] for i in range(min(self._batch, len(self._queue)))]
            await self._deliver(batch, http)
            for _ in batch:
                self._queue.popleft()
            self.sent += len(batch)
        if self._dropped and self._on_overflow is not None:
            # Audited once there is room again (auditing it while full would only overflow again).
            dropped, self._dropped = self._dropped, 0
            self._on_overflow(dropped)

    async def run(self) -> None:
        delay = self._interval
        async with httpx2.AsyncClient(timeout=10.0) as http:
            while True:
                with anyio.move_on_after(self._interval):
                    await self._ready.wait()
                self._ready = anyio.Event()
                try:
                    await self.drain(http)
                    delay = self._interval
                except (OSError, httpx2.HTTPError) as exc:
                    self.failures += 1
                    reason = type(exc).__name__ if isinstance(exc, httpx2.HTTPError) else str(exc)
                    log.warning("audit export failed, retrying in %.0f s: %s", delay, reason)
                    await anyio.sleep(delay)
                    delay = min(delay * 2, _BACKOFF_CAP)

    async def close(self, timeout: float = 5.0) -> None:
        """Try once more to send what is queued (clean shutdown), within `timeout`."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(timeout):
            try:
                async with httpx2.AsyncClient(timeout=timeout) as http:
                    await self.drain(http)
            except (OSError, httpx2.HTTPError) as exc:
                log.warning("audit export: %d records not delivered at shutdown (%s)", len(self._queue), exc)
