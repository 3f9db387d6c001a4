"""OpenTelemetry traces: off unless the standard OTEL_* variables ask for them (OTLP over HTTP/protobuf).

On when OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT is set (and neither
OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none says otherwise). The exporter, sampler and
resource read the rest of OTEL_* themselves (headers, timeout, OTEL_SERVICE_NAME, sampling).
Each Bastion has its own provider: nothing global is set, so embedding Bastion changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Tracer

from bastion import __version__


def tracing_wanted(environ: Mapping[str, str]) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").lower() in ("none", ""):
        return False
    return bool(environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


class Tracing:
    """A tracer provider exporting to the configured OTLP endpoint, and its tracer."""

    def __init__(self, replica: str) -> None:
        resource = Resource.create({"service.name": "bastion", "service.version": __version__, "service.instance.id": replica})
        self.provider = TracerProvider(resource=resource)
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self.tracer: Tracer = self.provider.get_tracer("bastion", __version__)

    def flush(self, timeout_ms: int = 5000) -> bool:
        return self.provider.force_flush(timeout_ms)

    def close(self) -> None:
        self.provider.shutdown()


def build_tracing(environ: Mapping[str, str], replica: str) -> Tracing | None:
    return Tracing(replica) if tracing_wanted(environ) else None
