"""Lean spans: what a traced request records, the sampling decision, and W3C trace context.

The OpenTelemetry SDK's spans cost about 70 us each in this gateway (context attach/detach,
attribute cleaning, a sampler call and a locked processor per span); these cost a few. A span is
plain data; a finished one is handed to `emit` (the exporter's queue, which batches and encodes
in its own thread). Sampling is decided once per request, at its root, as OTEL_TRACES_SAMPLER says;
children follow their root, as the parent-based samplers would have them. An unsampled request
gets no span at all: only the trace context it passes upstream, made once as the `_meta` entries.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from typing import Any, NamedTuple

INTERNAL, SERVER, CLIENT = 1, 2, 3
"""Span kinds, numbered as in OTLP."""

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_MAX_TRACESTATE = 512  # W3C: a vendor list longer than this may be dropped
SAMPLERS = (
    "always_on", "always_off", "traceidratio",
    "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio",
)


class Parent(NamedTuple):
    """A remote parent, from a client's `traceparent` (and `tracestate`); a tuple, made per traced
    request (a frozen dataclass sets each field through object.__setattr__)."""

    trace_id: int
    span_id: int
    sampled: bool
    tracestate: str | None = None


def parse_traceparent(traceparent: str, tracestate: str | None = None) -> Parent | None:
    """A W3C `traceparent` (version 00 or a later one read as 00), or None when it is not one."""
    found = _TRACEPARENT.fullmatch(traceparent.strip())
    if found is None:
        return None
    version, trace, span, flags, rest = found.groups()
    trace_id, span_id = int(trace, 16), int(span, 16)
    if version == "ff" or (version == "00" and rest) or not trace_id or not span_id:
        return None
    state = tracestate.strip() if tracestate else None
    if state and (len(state) > _MAX_TRACESTATE or not header_text(state)):
        state = None  # not W3C trace context: dropped, not passed upstream in a header
    return Parent(trace_id, span_id, bool(int(flags, 16) & 1), state or None)


def header_text(value: str) -> bool:
    """Printable ASCII and tabs: all W3C trace context may hold, and what an HTTP header can carry (no
    CR/LF, no text UTF-8 cannot encode)."""
    return value.isascii() and value.replace("\t", " ").isprintable()


class Sampler:
    """The standard samplers by their OTEL_TRACES_SAMPLER names, decided at a request's root."""

    def __init__(self, name: str = "parentbased_always_on", ratio: float = 1.0) -> None:
        if name not in SAMPLERS:
            raise ValueError(f"unknown sampler {name!r}")
        self.name = name
        self.parent_based = name.startswith("parentbased_")
        self.always = name.endswith("always_on")
        self.never = name.endswith("always_off")
        self.bound = round(min(1.0, max(0.0, ratio)) * (1 << 64))  # as the SDK's TraceIdRatioBased

    def sampled(self, trace_id: int, parent: Parent | None) -> bool:
        if parent is not None and self.parent_based:
            return parent.sampled
        if self.always or self.never:
            return self.always
        return (trace_id & 0xFFFFFFFFFFFFFFFF) < self.bound


class Span:
    """One recorded span: plain data until it ends and goes to `emit`."""

    __slots__ = (
        "_emit", "attributes", "end_ns", "error", "kind", "name", "parent_id", "remote", "span_id",
        "start_ns", "trace_id", "tracestate",
    )

    def __init__(
        self,
        emit: Callable[[Span], None],
        trace_id: int,
        parent_id: int,
        name: str,
        kind: int,
        attributes: dict[str, Any],
        tracestate: str | None = None,
        remote: bool = False,
    ) -> None:
        self._emit = emit
        self.trace_id, self.parent_id, self.span_id = trace_id, parent_id, random.getrandbits(64) or 1
        self.name, self.kind, self.attributes = name, kind, attributes
        self.tracestate, self.remote = tracestate, remote
        self.error: str | None = None
        """The status message when the span ended in error (status unset otherwise)."""
        self.start_ns = time.time_ns()
        self.end_ns = 0

    def child(self, name: str, kind: int, attributes: dict[str, Any] | None = None) -> Span:
        """A span under this one."""
        return Span(self._emit, self.trace_id, self.span_id, name, kind, attributes or {}, self.tracestate)

    def fail(self, error_type: str, message: str) -> None:
        self.attributes["error.type"] = error_type
        self.error = message

    def end(self) -> None:
        if not self.end_ns:
            self.end_ns = time.time_ns()
            self._emit(self)

    def context(self) -> dict[str, str]:
        """The `_meta` entries that pass this span's trace context on (sampled)."""
        return trace_context(self.trace_id, self.span_id, True, self.tracestate)


def trace_context(trace_id: int, span_id: int, sampled: bool, tracestate: str | None) -> dict[str, str]:
    """W3C trace context as `_meta` entries: `traceparent`, and `tracestate` when there is one."""
    traceparent = f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"
    return {"traceparent": traceparent, "tracestate": tracestate} if tracestate else {"traceparent": traceparent}


class Tracer:
    """Starts requests' root spans, sampled as `sampler` decides; finished spans go to `emit`."""

    def __init__(self, sampler: Sampler, emit: Callable[[Span], None]) -> None:
        self.sampler = sampler
        self.emit = emit

    def request(self, kind: int, parent: Parent | None) -> Span | dict[str, str]:
        """A sampled request's root span, nameless (the caller names it and only then builds its
        attributes); for an unsampled one only the trace context it passes upstream (`_meta`
        entries under a span id of its own, flagged unsampled): no span, nothing to end."""
        trace_id = parent.trace_id if parent is not None else random.getrandbits(128) or 1
        if not self.sampler.sampled(trace_id, parent):
            return trace_context(trace_id, random.getrandbits(64) or 1, False, parent.tracestate if parent is not None else None)
        if parent is None:
            return Span(self.emit, trace_id, 0, "", kind, {})
        return Span(self.emit, trace_id, parent.span_id, "", kind, {}, parent.tracestate, remote=True)
