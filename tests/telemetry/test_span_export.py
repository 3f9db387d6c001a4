"""The span export queue: batches as the SDK's batch processor sends them."""

from __future__ import annotations

import threading

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bastion.core.tracing import SERVER, Span
from bastion.telemetry.tracing import SpanExport


class _Receiver:
    """Stands in for the OTLP poster: records who posted how many spans."""

    def __init__(self, wait_for: int) -> None:
        self.posts: list[tuple[str, int]] = []
        self.enough = threading.Event()
        self._wait_for = wait_for

    def post(self, body: bytes) -> bool:
        request = ExportTraceServiceRequest.FromString(body)
        self.posts.append((threading.current_thread().name, len(request.resource_spans[0].scope_spans[0].spans)))
        if len(self.posts) >= self._wait_for:
            self.enough.set()
        return True

    def close(self) -> None:
        pass


def test_a_full_batch_wakes_the_thread_which_leaves_a_partial_one_for_later() -> None:
    """Spans arriving while a batch is posted wait for the next full batch (or the schedule delay,
    or a flush) instead of going out in small posts, one per round trip."""
    receiver = _Receiver(wait_for=2)
    environ = {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4", "OTEL_BSP_SCHEDULE_DELAY": "600000"}
    export = SpanExport(receiver, {"service.name": "bastion"}, environ)  # type: ignore[arg-type]
    try:
        for n in range(10):
            Span(export.add, n + 1, 0, "tools/call echo", SERVER, {}).end()
        assert receiver.enough.wait(10)
        export.export_all()
        assert receiver.posts == [("bastion-span-export", 4), ("bastion-span-export", 4), ("MainThread", 2)]
    finally:
        export.close()
