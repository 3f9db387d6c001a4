"""OpenTelemetry traces: off unless the standard OTEL_* variables ask for them (OTLP over HTTP/protobuf).

On when OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT is set (and neither
OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none says otherwise). OTEL_TRACES_SAMPLER(_ARG) pick
the sampler; the SDK's Resource reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (they win over
Bastion's defaults); the endpoint, headers, timeout, compression and certificates are read as the
SDK's OTLP/HTTP exporter reads them (otlp_http.py); OTEL_BSP_* size and pace the batches, as for the
SDK's BatchSpanProcessor.

The request path records `core.tracing` spans (a few microseconds each) and appends finished ones
to a bounded queue; a thread of this module's own takes them in batches, encodes them
(span_encoding.py) and posts them. Nothing global is set, so embedding Bastion changes nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource

from bastion import __version__
from bastion.core.tracing import SAMPLERS, Sampler, Span, Tracer
from bastion.telemetry.otlp_http import OtlpPoster, otlp_settings
from bastion.telemetry.span_encoding import SpanEncoder

log = logging.getLogger("bastion.tracing")



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


class SpanExport:
    """A bounded queue of finished spans and the thread that exports them in batches.

    `add` is the hot path: one length check and a deque append (no lock; deque appends are atomic).
    A full queue drops the span and counts it, as the SDK's processor does.
    """

    def __init__(self, poster: OtlpPoster, resource: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        self._poster = poster
        self._delay = _int(environ, "OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000
        self._max_queue = _int(environ, "OTEL_BSP_MAX_QUEUE_SIZE", 2048)
        self._batch = min(_int(environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512), self._max_queue)
        self._queue: deque[Span] = deque()
        self._wake = threading.Event()
        self._export_lock = threading.Lock()
        self._closed = False
        self.dropped = 0
        self._encoder = SpanEncoder(resource, "bastion", __version__)
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
            full = self._wake.wait(self._delay)
            self._wake.clear()
            self._export(whole_batches_only=full)

    def export_all(self) -> bool:
        """Export everything queued now, a batch at a time; False if a batch was refused."""
        return self._export(whole_batches_only=False)

    def _export(self, *, whole_batches_only: bool) -> bool:
        """Woken by a full batch, send full batches only and leave the rest for a later batch or
        the schedule delay, as the SDK's batch processor does: a queue drained to the last span
        while spans keep coming posts a small batch per round trip, at the cost of a large one."""
        ok = True
        least = self._batch if whole_batches_only else 1
        with self._export_lock:
            while len(self._queue) >= least:
                batch = [self._queue.popleft() for _ in range(min(self._batch, len(self._queue)))]
                ok = self._send(batch) and ok
            if self.dropped:
                log.warning("%d spans dropped: the export queue (OTEL_BSP_MAX_QUEUE_SIZE) was full", self.dropped)
                self.dropped = 0
        return ok

    def _send(self, batch: Sequence[Span]) -> bool:
        try:
            return self._poster.post(self._encoder.request(batch))
        except Exception as exc:  # noqa: BLE001 - an exporter must never take the gateway down
            log.warning("spans not exported: %s", type(exc).__name__)
            return False

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=5)
        self.export_all()
        self._poster.close()


def resource_attributes(replica: str) -> dict[str, Any]:
    """The SDK's resource (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME win), with Bastion's defaults:
    service name "bastion", its version, and the replica as the service instance."""
    attributes = dict(Resource.create().attributes)
    if str(attributes.get("service.name", "")).startswith("unknown_service"):
        attributes["service.name"] = "bastion"
    attributes.setdefault("service.version", __version__)
    attributes.setdefault("service.instance.id", replica)
    return attributes


class Tracing:
    """The tracer of this gateway and its exporter, configured from OTEL_* variables."""

    def __init__(self, replica: str, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.export = SpanExport(OtlpPoster(otlp_settings(environ)), resource_attributes(replica), environ)
        self.tracer = Tracer(sampler_from(environ), self.export.add)

    def flush(self, timeout_ms: int = 5000) -> bool:
        return self.export.export_all()

    def close(self) -> None:
        self.export.close()


def build_tracing(environ: Mapping[str, str], replica: str) -> Tracing | None:
    return Tracing(replica, environ) if tracing_wanted(environ) else None
