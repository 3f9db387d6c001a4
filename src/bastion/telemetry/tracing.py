"""OpenTelemetry traces: off unless the standard OTEL_* variables ask for them (OTLP over HTTP/protobuf).

On when OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT is set (and neither
OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none says otherwise). OTEL_TRACES_SAMPLER(_ARG) pick
the sampler, the SDK's Resource reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, the SDK's
OTLP/HTTP exporter reads the endpoint, headers, timeout, compression and certificates, and
OTEL_BSP_* size and pace the batches, as with the SDK's BatchSpanProcessor.

The request path records `core.tracing` spans (a few microseconds each) and appends finished ones
to a bounded queue; a thread of this module's own takes them in batches, encodes them with the
`opentelemetry-proto` messages and posts them. Nothing global is set, so embedding Bastion changes nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ResourceProto
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource

from bastion import __version__
from bastion.core.tracing import SAMPLERS, Sampler, Span, Tracer

log = logging.getLogger("bastion.tracing")

_ERROR = trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR)
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200  # Span.flags bits (SpanFlags in the OTLP protos)


def tracing_wanted(environ: Mapping[str, str]) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").lower() in ("none", ""):
        return False
    return bool(environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def sampler_from(environ: Mapping[str, str]) -> Sampler:
    """OTEL_TRACES_SAMPLER and its argument, read as the SDK reads them (unknown -> the default)."""
    name = environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
    if name not in SAMPLERS:
        log.warning("unknown OTEL_TRACES_SAMPLER %r: sampling parentbased_always_on", name)
        name = "parentbased_always_on"
    ratio = 1.0
    if name.endswith("traceidratio"):
        try:
            ratio = float(environ.get("OTEL_TRACES_SAMPLER_ARG", ""))
        except ValueError:
            log.warning("OTEL_TRACES_SAMPLER_ARG is not a number: sampling everything")
    return Sampler(name, ratio)


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    try:
        value = int(environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


def _value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


def _attributes(attributes: Mapping[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=_value(v)) for k, v in attributes.items()]


def _encoded(span: Span) -> trace_pb2.Span:
    out = trace_pb2.Span(
        trace_id=span.trace_id.to_bytes(16, "big"),
        span_id=span.span_id.to_bytes(8, "big"),
        name=span.name,
        kind=span.kind,  # type: ignore[arg-type]  # the OTLP enum's numbers
        start_time_unix_nano=span.start_ns,
        end_time_unix_nano=span.end_ns,
        attributes=_attributes(span.attributes),
        flags=0x01 | _HAS_IS_REMOTE | (_IS_REMOTE if span.remote else 0),
    )
    if span.parent_id:
        out.parent_span_id = span.parent_id.to_bytes(8, "big")
    if span.tracestate:
        out.trace_state = span.tracestate
    if span.error is not None:
        out.status.CopyFrom(_ERROR)
        out.status.message = span.error
    return out


class SpanExport:
    """A bounded queue of finished spans and the thread that exports them in batches.

    `add` is the hot path: one length check and a deque append (no lock; deque appends are atomic).
    A full queue drops the span and counts it, as the SDK's processor does.
    """

    def __init__(self, exporter: OTLPSpanExporter, resource: Resource, environ: Mapping[str, str]) -> None:
        self._exporter = exporter
        self._delay = _int(environ, "OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000
        self._max_queue = _int(environ, "OTEL_BSP_MAX_QUEUE_SIZE", 2048)
        self._batch = min(_int(environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512), self._max_queue)
        self._queue: deque[Span] = deque()
        self._wake = threading.Event()
        self._export_lock = threading.Lock()
        self._closed = False
        self.dropped = 0
        self._resource = ResourceProto(attributes=_attributes(resource.attributes))
        self._scope = InstrumentationScope(name="bastion", version=__version__)
        self._thread = threading.Thread(target=self._run, name="bastion-span-export", daemon=True)
        self._thread.start()

    def add(self, span: Span) -> None:
        queue = self._queue
        if len(queue) >= self._max_queue:
            self.dropped += 1
            return
        queue.append(span)
        if len(queue) == self._batch:
            self._wake.set()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self._delay)
            self._wake.clear()
            self.export_all()

    def export_all(self) -> bool:
        """Export everything queued now, a batch at a time; False if a batch was refused."""
        ok = True
        with self._export_lock:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(self._batch, len(self._queue)))]
                ok = self._send(batch) and ok
            if self.dropped:
                log.warning("%d spans dropped: the export queue (OTEL_BSP_MAX_QUEUE_SIZE) was full", self.dropped)
                self.dropped = 0
        return ok

    def _send(self, batch: Sequence[Span]) -> bool:
        request = ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add(resource=self._resource)
        resource_spans.scope_spans.add(scope=self._scope, spans=[_encoded(s) for s in batch])
        try:
            # The SDK exporter's HTTP client (private): it applies the OTEL_EXPORTER_OTLP_* settings
            # (endpoint, headers, timeout, compression, TLS) and retries. Its public `export` only
            # takes the SDK's span objects, whose cost is what this module avoids.
            result = self._exporter._client.export(request.SerializeToString())  # noqa: SLF001
        except Exception as exc:  # noqa: BLE001 - an exporter must never take the gateway down
            log.warning("spans not exported: %s", type(exc).__name__)
            return False
        return bool(result.success)

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=5)
        self.export_all()
        self._exporter.shutdown()  # type: ignore[no-untyped-call]


class Tracing:
    """The tracer of this gateway and its exporter, configured from OTEL_* variables."""

    def __init__(self, replica: str, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        resource = Resource.create({"service.name": "bastion", "service.version": __version__, "service.instance.id": replica})
        self.export = SpanExport(OTLPSpanExporter(), resource, environ)
        self.tracer = Tracer(sampler_from(environ), self.export.add)

    def flush(self, timeout_ms: int = 5000) -> bool:
        return self.export.export_all()

    def close(self) -> None:
        self.export.close()


def build_tracing(environ: Mapping[str, str], replica: str) -> Tracing | None:
    return Tracing(replica, environ) if tracing_wanted(environ) else None
