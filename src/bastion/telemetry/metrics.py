"""Prometheus metrics of one replica (each replica exposes its own figures).

Labels are bounded: virtual server, method, upstream and catalog item (all from the catalog, never
from what a client typed: an unknown name is counted as ""), outcome (a closed set), refusal
reason (error titles). Never a user, token, session, request id or argument. Histograms carry no
item label (buckets times items would be too many series). Gauges that describe state (upstream
health, catalog size, sessions) are read at scrape time, not updated on the hot path.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from bastion import __version__
from bastion.core.observation import CallRecord, EdgeEvent
from bastion.telemetry.request_figures import Histograms, RequestCounts

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_VERSIONS = {"application/openmetrics-text": ("1.0.0", "2.0.0"), "text/plain": ("0.0.4", "1.0.0")}
"""The formats prometheus_client writes, by version (none named: its default)."""
_REFUSED = re.compile(r"0(\.0{0,3})?")
"""A q value of zero (RFC 9110): the client does not want that format."""


def spoken(accept: str) -> str:
    """`accept` with only the media ranges we can honour, rewritten as prometheus_client reads them.
    It echoes any version it is given (`version=99`) into the content type, fails on one that is not
    a number, and ignores q: a range refused (q=0) or naming another version is left out instead."""
    kept = []
    for media_range in accept.split(","):
        media, *parameters = (part.strip() for part in media_range.split(";"))
        values = {k.strip().lower(): v.strip() for k, _, v in (p.partition("=") for p in parameters)}
        versions = _VERSIONS.get(media.lower())
        version = values.get("version")
        if versions is None or (version and version not in versions) or _REFUSED.fullmatch(values.get("q", "1")):
            continue
        kept.append("; ".join([media.lower(), *(f"{k}={values[k]}" for k in ("version", "escaping") if values.get(k))]))
    return ", ".join(kept)


@dataclass
class StateFigures:
    """What the gateway's state looks like right now, read once per scrape."""

    upstream_up: dict[str, bool] = field(default_factory=dict)
    upstream_reconnects: dict[str, int] = field(default_factory=dict)
    upstream_last_failure: dict[str, float] = field(default_factory=dict)
    catalog_items: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    approvals_pending: int = 0
    virtual_servers: int = 0
    sessions: dict[str, int] = field(default_factory=dict)
    open_streams: int = 0
    held_calls: int = 0


class _StateCollector(Collector):
    def __init__(self, read: Callable[[], StateFigures]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        state = self._read()
        up = GaugeMetricFamily("bastion_upstream_up", "1 if the upstream is connected and healthy", labels=["upstream"])
        reconnects = CounterMetricFamily(
            "bastion_upstream_reconnects", "Times this replica's connection to the upstream was lost or failed", labels=["upstream"]
        )
        failed = GaugeMetricFamily(
            "bastion_upstream_last_failure_timestamp_seconds", "When the upstream last failed (epoch s)", labels=["upstream"]
        )
        for name, value in sorted(state.upstream_up.items()):
            up.add_metric([name], 1.0 if value else 0.0)
            reconnects.add_metric([name], float(state.upstream_reconnects.get(name, 0)))
            if name in state.upstream_last_failure:
                failed.add_metric([name], state.upstream_last_failure[name])
        catalog = GaugeMetricFamily("bastion_catalog_items", "Items in the catalog, by kind", labels=["kind"])
        quarantined = GaugeMetricFamily(
            "bastion_catalog_quarantined", "Catalog items held back until an admin approves their definition, by kind",
            labels=["kind"],
        )
        for kind, count in sorted(state.catalog_items.items()):
            catalog.add_metric([kind], float(count))
            quarantined.add_metric([kind], float(state.quarantined.get(kind, 0)))
        sessions = GaugeMetricFamily("bastion_sessions", "Open 2025-11-25 MCP sessions on this replica", labels=["server"])
        for server, count in sorted(state.sessions.items()):
            sessions.add_metric([server], float(count))
        yield from (up, reconnects, failed, catalog, quarantined, sessions)
        yield GaugeMetricFamily(
            "bastion_approvals_pending", "Changed, new or removed definitions waiting for an admin's decision",
            value=float(state.approvals_pending),
        )
        yield GaugeMetricFamily("bastion_virtual_servers", "Virtual servers configured", value=float(state.virtual_servers))
        yield GaugeMetricFamily("bastion_open_streams", "Open server-to-client streams on this replica", value=float(state.open_streams))
        yield GaugeMetricFamily("bastion_held_calls", "Bridged calls held waiting for a client's answer", value=float(state.held_calls))


class Metrics:
    """The registry and the instruments; a CallObserver and EdgeObserver for the pipeline and edge."""

    def __init__(self, *, per_item: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._per_item = per_item
        r = self.registry
        self.requests = RequestCounts()  # exposed by `expose`, which formats it directly
        self.duration = Histograms(
            "bastion_request_duration_seconds", "Whole request time in the gateway, upstream included",
            ["server", "method"], _BUCKETS,
        )
        self.gateway_duration = Histograms(
            "bastion_gateway_duration_seconds", "The gateway's own time per request (whole minus upstream)",
            ["server", "method"], _BUCKETS,
        )
        self.upstream_duration = Histograms(
            "bastion_upstream_duration_seconds", "Time waiting on the upstream per request (all attempts)",
            ["upstream", "method"], _BUCKETS,
        )
        for histogram in (self.duration, self.gateway_duration, self.upstream_duration):
            r.register(histogram)
        self.refused = Counter(
            "bastion_refused_requests", "Requests refused at the edge or in the pipeline, by reason",
            ["reason"], registry=r,
        )
        self.auth_failures = Counter(
            "bastion_auth_failures", "Failed authentication (bad or missing credential, failed sign-in), by reason",
            ["reason"], registry=r,
        )
        self.rate_limited = Counter(
            "bastion_rate_limited", "Calls refused by a rate limit, by virtual server", ["server"], registry=r
        )
        self.dependency_errors = Counter(
            "bastion_dependency_errors", "Errors talking to Redis or the database", ["dependency"], registry=r
        )
        self.admin_changes = Counter(
            "bastion_admin_changes", "Configuration changes over the REST API, by outcome", ["outcome"], registry=r
        )
        self.audit_records = Counter("bastion_audit_records", "Audit records written", registry=r)
        self.audit_dropped = Counter(
            "bastion_audit_dropped", "Audit or export records dropped because a bounded queue was full",
            ["queue"], registry=r,
        )
        self.flushes = Histogram(
            "bastion_telemetry_flush_seconds", "Time to write one batch of audit or usage records",
            ["what"], buckets=_BUCKETS, registry=r,
        )
        Gauge("bastion_build_info", "Bastion version", ["version", "python"], registry=r).labels(
            __version__, platform.python_version()
        ).set(1)

    def expose(self, accept: str) -> tuple[bytes, str]:
        """The whole exposition (text format, or OpenMetrics when `accept` asks for it)."""
        encoder, content_type = choose_encoder(spoken(accept))
        body = encoder(self.registry)
        openmetrics = content_type.startswith("application/openmetrics-text")
        requests = self.requests.text(openmetrics).encode()
        if openmetrics and body.endswith(b"# EOF\n"):
            return body[: -len(b"# EOF\n")] + requests + b"# EOF\n", content_type
        return body + requests, content_type

    def watch_state(self, read: Callable[[], StateFigures]) -> None:
        self.registry.register(_StateCollector(read))

    def call_finished(self, record: CallRecord) -> None:
        item = (record.item or "") if self._per_item else ""
        upstream = record.upstream or ""
        self.requests.inc((record.server, record.method, upstream, item, record.outcome))
        where = (record.server, record.method)
        self.duration.observe(where, record.seconds)
        self.gateway_duration.observe(where, max(0.0, record.seconds - record.upstream_seconds))
        if record.upstream is not None and record.upstream_seconds > 0:
            self.upstream_duration.observe((upstream, record.method), record.upstream_seconds)
        if record.outcome == "rate_limited":
            self.rate_limited.labels(record.server).inc()
        elif record.outcome == "denied":
            self.refused.labels("forbidden" if record.principal else "unauthenticated").inc()
        elif record.outcome == "unavailable":
            self.dependency_errors.labels("redis").inc()

    def edge_event(self, event: EdgeEvent) -> None:
        if event.kind == "refused":
            reason = event.reason or "unknown"
            self.refused.labels(reason).inc()
            if reason in ("unauthenticated", "forbidden"):
                self.auth_failures.labels("bad_credential" if reason == "unauthenticated" else "not_allowed").inc()
            if reason == "service_unavailable":
                self.dependency_errors.labels("redis").inc()
        elif event.kind == "sign_in" and event.outcome != "ok":
            self.auth_failures.labels("sign_in_failed" if event.outcome == "denied" else event.outcome).inc()
        elif event.kind == "change":
            self.admin_changes.labels(event.outcome).inc()
