"""OTLP/protobuf encoding of `core.tracing` spans, for the exporter thread.

Building a `trace_pb2.Span` with its `KeyValue`/`AnyValue` messages costs about 13 us a span; the
attributes and names of a gateway's spans repeat (methods, servers, tools, outcomes), so each
distinct set of attributes and each name is encoded once with the `opentelemetry-proto` messages
and kept as bytes, and a span is those bytes joined with its ids and times in the protobuf wire format. The
request around the spans (resource, scope) is built with the messages themselves.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1 import trace_pb2

from bastion.core.surrogates import replaced as utf8  # a lone surrogate would fail the whole batch
from bastion.core.tracing import Span

_LEN, _FIXED64, _FIXED32, _VARINT = 2, 1, 5, 0
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200  # Span.flags bits (SpanFlags in the OTLP protos)
_CACHE_LIMIT = 8192


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    if n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = tuple(bytes((n,)) for n in range(0x80))


def _tag(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _field(field: int, payload: bytes) -> bytes:
    return _tag(field, _LEN) + _varint(len(payload)) + payload


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int) and -(1 << 63) <= value < 1 << 63:
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=utf8(str(value)))


def key_values(attributes: Mapping[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=utf8(k), value=any_value(v)) for k, v in attributes.items()]


_TRACE_ID, _SPAN_ID, _PARENT = _tag(1, _LEN) + b"\x10", _tag(2, _LEN) + b"\x08", _tag(4, _LEN) + b"\x08"
_START, _END = (7 << 3) | _FIXED64, (8 << 3) | _FIXED64  # one-byte tags
_TIMES = struct.Struct("<BQBQ2sI")  # start and end times, then flags (field 16: a two-byte tag)
_FLAGS = _tag(16, _FIXED32)
_KIND = tuple(_tag(6, _VARINT) + _varint(k) for k in range(6))
_STATUS_ERROR = _tag(3, _VARINT) + _varint(trace_pb2.Status.STATUS_CODE_ERROR)


class SpanEncoder:
    """Encodes batches of finished spans into ExportTraceServiceRequest bytes."""

    def __init__(self, resource: Mapping[str, Any], scope: str, version: str) -> None:
        # Field 1 of ExportTraceServiceRequest (ResourceSpans) wraps resource (1) and scope spans (2).
        self._resource = _field(1, Resource(attributes=key_values(resource)).SerializeToString())
        self._scope = _field(1, InstrumentationScope(name=scope, version=version).SerializeToString())
        self._names: dict[str, bytes] = {}
        self._sets: dict[tuple[tuple[tuple[str, Any], ...], tuple[type, ...]], bytes] = {}

    def _name(self, name: str) -> bytes:
        found = self._names.get(name)
        if found is None:
            if len(self._names) >= _CACHE_LIMIT:
                self._names.clear()
            found = self._names[name] = _field(5, utf8(name).encode())
        return found

    def _attributes(self, attributes: Mapping[str, Any]) -> bytes:
        """A span's attributes (field 9, repeated), encoded once per distinct set."""
        if not attributes:
            return b""  # a stage's span that did not fail
        # The value's type is part of the key: True, 1 and 1.0 are equal but encode differently.
        key = (tuple(attributes.items()), tuple(map(type, attributes.values())))
        found = self._sets.get(key)
        if found is None:
            if len(self._sets) >= _CACHE_LIMIT:
                self._sets.clear()
            found = self._sets[key] = b"".join(
                _field(9, KeyValue(key=utf8(k), value=any_value(v)).SerializeToString()) for k, v in attributes.items()
            )
        return found

    def span(self, span: Span) -> bytes:
        flags = 0x01 | _HAS_IS_REMOTE | (_IS_REMOTE if span.remote else 0)
        out = [
            _TRACE_ID, span.trace_id.to_bytes(16, "big"),
            _SPAN_ID, span.span_id.to_bytes(8, "big"),
            self._name(span.name),
            _KIND[span.kind],
            _TIMES.pack(_START, span.start_ns, _END, span.end_ns, _FLAGS, flags),
            self._attributes(span.attributes),
        ]
        if span.parent_id:
            out += (_PARENT, span.parent_id.to_bytes(8, "big"))
        if span.tracestate:
            out.append(_field(3, utf8(span.tracestate).encode()))
        if span.error is not None:
            out.append(_field(15, _field(2, utf8(span.error).encode()) + _STATUS_ERROR))
        return _field(2, b"".join(out))

    def request(self, spans: Sequence[Span]) -> bytes:
        scope_spans = _field(2, self._scope + b"".join(self.span(s) for s in spans))
        return _field(1, self._resource + scope_spans)
