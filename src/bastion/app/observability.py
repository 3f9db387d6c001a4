"""Wiring of metrics, logs, audit and usage: what the composition root adds for observability."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.routing import BaseRoute

from bastion.app.keys import Keys, audit_secrets
from bastion.config import Settings
from bastion.core.observation import EdgeEvent
from bastion.core.ports import EdgeObserver
from bastion.core.snapshot import Snapshot
from bastion.core.tracing import Tracer
from bastion.pipeline.bridge import Bridge
from bastion.pipeline.observe import CallBatch
from bastion.store.sql.audit import SqlAuditStore
from bastion.store.sql.usage import SqlUsageStore
from bastion.tasks import TaskRunner
from bastion.telemetry.audit import AuditLog
from bastion.telemetry.audit_keys import AuditKeys
from bastion.telemetry.export import AuditExport
from bastion.telemetry.logging import CallLog, quiet_libraries, set_replica
from bastion.telemetry.metrics import Metrics, StateFigures
from bastion.telemetry.metrics_port import MetricsPort
from bastion.telemetry.tracing import Tracing, build_tracing
from bastion.telemetry.usage import UsageRecorder
from bastion.upstream.pool import UpstreamPool
from bastion.web.mcp_endpoint import McpFront
from bastion.web.metrics import MetricsEndpoint
from bastion.web.rest.audit import audit_routes
from bastion.web.rest.usage import usage_routes

log = logging.getLogger("bastion.telemetry")

_RETENTION_EVERY = 3600.0
CALL_BATCH = 256
CALL_BATCH_DELAY = 0.1
"""Finished calls are told to the observers (metrics, log line, audit, usage) in batches of up to
CALL_BATCH, at most CALL_BATCH_DELAY seconds after the first: a log line appears up to 0.1 s after
its call; a scrape and the audit and usage flushes drain the batch first."""


@dataclass
class Telemetry:
    settings: Settings
    metrics: Metrics
    audit: AuditLog
    usage: UsageRecorder
    usage_store: SqlUsageStore
    calls: CallLog
    batch: CallBatch
    tracing: Tracing | None = None
    export: AuditExport | None = None
    _metrics_server: MetricsPort | None = field(default=None, repr=False)
    endpoint: MetricsEndpoint = field(init=False)

    def __post_init__(self) -> None:
        token = self.settings.metrics_token
        self.endpoint = MetricsEndpoint(self.expose, token.get_secret_value() if token is not None else None)

    @property
    def tracer(self) -> Tracer | None:
        return self.tracing.tracer if self.tracing is not None else None

    def expose(self, accept: str) -> tuple[bytes, str]:
        """The metrics exposition, counting every call finished so far."""
        self.batch.drain()
        return self.metrics.expose(accept)

    @property
    def edge_observers(self) -> list[EdgeObserver]:
        return [self.metrics, self.audit]

    def retention(self) -> dict[str, float]:
        s = self.settings
        return {"minute": s.usage_retention_minute_days, "hour": s.usage_retention_hour_days, "day": s.usage_retention_day_days}

    def routes(self, catalog: Callable[[], Snapshot]) -> list[BaseRoute]:
        return [
            *audit_routes(self.audit),
            *usage_routes(self.usage_store, self.usage, lambda: catalog().items, self.retention()),
        ]

    def watch(self, snapshot: Callable[[], Snapshot], pool: UpstreamPool, front: McpFront, bridge: Bridge) -> None:
        def read() -> StateFigures:
            snap = snapshot()
            live = pool.connection_figures()
            figures = StateFigures(virtual_servers=len(snap.servers), held_calls=bridge.held_count)
            for name, upstream in snap.upstreams.items():
                connected, failures, failed_at = live.get(name, (False, 0, None))
                figures.upstream_up[name] = upstream.spec.enabled and upstream.state.status == "healthy" and (
                    connected or name not in live
                )
                figures.upstream_reconnects[name] = failures
                if failed_at is not None:
                    figures.upstream_last_failure[name] = failed_at
            figures.catalog_items = dict(Counter(i.kind for i in snap.items))
            figures.quarantined = dict(Counter(i.kind for i in snap.items if i.quarantined))
            figures.approvals_pending = len(snap.approvals)
            figures.sessions, figures.open_streams = front.session_figures()
            return figures

        self.metrics.watch_state(read)

    def start(self, runner: TaskRunner, is_leader: Callable[[], bool]) -> None:
        runner.spawn("audit-writer", self.audit.run)
        runner.spawn("usage-writer", self.usage.run)
        if self.export is not None:
            runner.spawn("audit-export", self.export.run)
        runner.spawn("telemetry-retention", self._retention_loop, is_leader)
        port = self.settings.metrics_port
        if port is not None:
            # The port answers from its own threads, which must not run the observers (they belong
            # to the event loop): its figures leave out at most the last batch (0.1 s of calls).
            self._metrics_server = MetricsPort(self.settings.metrics_host, port, self.metrics.expose)
            log.info("metrics on http://%s:%d/metrics", self.settings.metrics_host, self._metrics_server.port)

    @property
    def metrics_port(self) -> int | None:
        return self._metrics_server.port if self._metrics_server is not None else None

    async def _retention_loop(self, is_leader: Callable[[], bool]) -> None:
        while True:
            await anyio.sleep(_RETENTION_EVERY)
            if is_leader():
                await self.apply_retention()

    async def apply_retention(self) -> None:
        """Delete usage rows and (when configured) audit records past their retention."""
        now = datetime.now(UTC)
        for granularity, days in self.retention().items():
            await self.usage_store.prune(granularity, (now - timedelta(days=days)).isoformat())
        if self.settings.audit_retention_days is not None:
            removed = await self.audit.prune(self.settings.audit_retention_days)
            if removed:
                log.info("audit retention removed %d records (signed checkpoints written)", removed)

    async def close(self) -> None:
        """Write what is still in memory (audit records of completed calls, usage counts)."""
        self.batch.drain()
        await self.audit.close()
        await self.usage.close()
        if self.export is not None:
            await self.export.close()
        if self.tracing is not None:
            await anyio.to_thread.run_sync(self.tracing.close)
        if self._metrics_server is not None:
            self._metrics_server.close()


def build_telemetry(settings: Settings, engine: AsyncEngine, replica: str, secrets: Keys) -> Telemetry:
    metrics = Metrics(per_item=settings.metrics_per_item)
    keys = AuditKeys(*audit_secrets(settings, secrets))
    set_replica(replica)
    quiet_libraries()

    def dropped(count: int) -> None:
        metrics.audit_dropped.labels("audit").inc(count)

    def audit_written(count: int, seconds: float) -> None:
        metrics.audit_records.inc(count)
        metrics.flushes.labels("audit").observe(seconds)

    audit = AuditLog(
        SqlAuditStore(engine),
        keys,
        replica,
        flush_interval=settings.audit_flush_interval,
        sign_interval=settings.audit_sign_interval,
        max_queue=settings.audit_queue,
        on_dropped=dropped,
        on_written=audit_written,
        on_failed=lambda: metrics.dependency_errors.labels("database").inc(),
    )
    usage_store = SqlUsageStore(engine)
    usage = UsageRecorder(
        usage_store,
        replica,
        keys.digest,
        flush_interval=settings.usage_flush_interval,
        on_written=lambda _n, seconds: metrics.flushes.labels("usage").observe(seconds),
        on_failed=lambda: metrics.dependency_errors.labels("database").inc(),
    )
    calls = CallLog(replica)
    observers = (metrics, calls, audit, usage) if settings.observe_calls else ()
    batch = CallBatch(observers, size=CALL_BATCH, delay=CALL_BATCH_DELAY)
    audit.catch_up = usage.catch_up = batch.drain
    tracing = build_tracing(os.environ, replica)
    export = audit_export(settings, audit, metrics)
    return Telemetry(settings, metrics, audit, usage, usage_store, calls, batch, tracing, export)


def audit_export(settings: Settings, audit: AuditLog, metrics: Metrics) -> AuditExport | None:
    """The SIEM export, when a file or URL is configured; it receives every stored batch."""
    if settings.audit_export_file is None and settings.audit_export_url is None:
        return None

    def overflowed(count: int) -> None:
        detail = f"{count} audit records were not exported: the export queue was full"
        audit.edge_event(EdgeEvent("export", time.time(), "audit.export_overflow", "siem", "error", 0, 0.0, detail=detail))

    export = AuditExport(
        file=settings.audit_export_file,
        url=settings.audit_export_url if settings.audit_export_file is None else None,
        token=settings.audit_export_token.get_secret_value() if settings.audit_export_token else None,
        max_queue=settings.audit_export_queue,
        on_dropped=lambda n: metrics.audit_dropped.labels("export").inc(n),
        on_overflow=overflowed,
    )
    audit.listeners.append(export.offer)
    return export
