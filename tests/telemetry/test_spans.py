"""Lean spans: W3C trace context, the standard samplers' decisions, and their OTLP encoding."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto
from opentelemetry.proto.trace.v1.trace_pb2 import Status
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

from bastion.core.tracing import CLIENT, SERVER, Parent, Sampler, Span, Tracer, parse_traceparent
from bastion.telemetry.span_encoding import SpanEncoder
from bastion.telemetry.tracing import sampler_from

TRACE = "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.parametrize(
    "header",
    [
        f"00-{TRACE}-b7ad6b7169203331-0",
        f"00-{'0' * 32}-b7ad6b7169203331-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"ff-{TRACE}-b7ad6b7169203331-01",
        f"00-{TRACE}-b7ad6b7169203331-01-extra",
        f"00-{TRACE.upper()}-b7ad6b7169203331-01",
        "not a traceparent",
    ],
)
def test_a_malformed_traceparent_is_no_parent(header: str) -> None:
    assert parse_traceparent(header) is None


def test_a_traceparent_gives_the_parent_and_its_state() -> None:
    parent = parse_traceparent(f"00-{TRACE}-b7ad6b7169203331-01", "vendor=x")
    assert parent == Parent(int(TRACE, 16), 0xB7AD6B7169203331, True, "vendor=x")
    later = parse_traceparent(f"01-{TRACE}-b7ad6b7169203331-00-more")
    assert later is not None and not later.sampled
    assert parse_traceparent(f"00-{TRACE}-b7ad6b7169203331-01", "x" * 600) == Parent(int(TRACE, 16), 0xB7AD6B7169203331, True)
    for unsendable in ("v=\ud800", "v=caf\u00e9", "v=1\r\nx-injected: 1", "v=\x00"):  # W3C: printable ASCII only
        assert parse_traceparent(f"00-{TRACE}-b7ad6b7169203331-01", unsendable) == Parent(int(TRACE, 16), 0xB7AD6B7169203331, True)
    for kept in ("a=1, b=2", "dd=s:1;o:rum,ot=th:8", "a=1,\tb=2", "congo=t61rcWkgMzE"):  # what SDKs and W3C write
        assert parse_traceparent(f"00-{TRACE}-b7ad6b7169203331-01", kept) == Parent(int(TRACE, 16), 0xB7AD6B7169203331, True, kept)


def test_the_ratio_sampler_decides_as_the_sdks() -> None:
    ours, sdks = Sampler("traceidratio", 0.25), TraceIdRatioBased(0.25)
    for trace_id in range(0, 1 << 128, (1 << 128) // 997):
        assert ours.sampled(trace_id, None) == sdks.should_sample(None, trace_id, "x").decision.is_sampled()


def test_parent_based_samplers_follow_a_remote_parent_and_the_others_do_not() -> None:
    sampled, unsampled = Parent(1, 2, True), Parent(1, 2, False)
    assert Sampler("parentbased_always_off").sampled(1, sampled)
    assert not Sampler("parentbased_always_on").sampled(1, unsampled)
    assert not Sampler("parentbased_always_on", 1.0).sampled(1, unsampled)
    assert not Sampler("always_off").sampled(1, sampled)
    assert Sampler("always_on").sampled(1, unsampled)
    assert not Sampler("parentbased_always_off").sampled(1, None)


def test_otel_sampler_settings_are_read_as_the_sdk_reads_them() -> None:
    assert sampler_from({}).name == "parentbased_always_on"
    assert sampler_from({"OTEL_TRACES_SAMPLER": "jaeger_remote"}).name == "parentbased_always_on"
    ratio = sampler_from({"OTEL_TRACES_SAMPLER": "TraceIdRatio", "OTEL_TRACES_SAMPLER_ARG": "0"})
    assert ratio.name == "traceidratio" and not ratio.sampled((1 << 64) - 1, None)
    assert sampler_from({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "half"}).bound == 1 << 64


def test_an_unsampled_request_records_nothing_and_passes_its_context_on() -> None:
    ended: list[Span] = []
    tracer = Tracer(Sampler("always_off"), ended.append)
    context = tracer.request(SERVER, Parent(7, 9, True, "v=1"))
    assert isinstance(context, dict) and ended == []
    version, trace_id, span_id, flags = context["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", f"{7:032x}", "00") and span_id not in ("0" * 16, f"{9:016x}")
    assert context["tracestate"] == "v=1"
    fresh = tracer.request(SERVER, None)
    assert isinstance(fresh, dict) and set(fresh) == {"traceparent"}
    assert parse_traceparent(fresh["traceparent"]) is not None and fresh["traceparent"].endswith("-00")


def test_a_sampled_span_passes_its_own_context_on() -> None:
    root = Tracer(Sampler("always_on"), [].append).request(SERVER, Parent(7, 9, False, "v=1"))
    assert isinstance(root, Span)
    child = root.child("upstream tools/call", CLIENT)
    assert child.context() == {"traceparent": f"00-{7:032x}-{child.span_id:016x}-01", "tracestate": "v=1"}


def test_spans_encode_as_the_otlp_messages_read_them() -> None:
    ended: list[Span] = []
    root = Tracer(Sampler(), ended.append).request(SERVER, Parent(int(TRACE, 16), 0xB7AD6B7169203331, True, "v=1"))
    root.name, root.attributes = "tools/call up__echo", {"count": 1, "flag": True, "ratio": 1.0, "text": "1"}
    child = root.child("upstream tools/call", CLIENT, {"bastion.upstream": "up"})
    child.fail("-32001", "upstream unavailable")
    child.end()
    root.end()
    encoder = SpanEncoder({"service.name": "bastion"}, "bastion", "9.9")
    message = ExportTraceServiceRequest.FromString(encoder.request(ended))
    resource_spans = message.resource_spans[0]
    assert resource_spans.resource.attributes[0].value.string_value == "bastion"
    assert (resource_spans.scope_spans[0].scope.name, resource_spans.scope_spans[0].scope.version) == ("bastion", "9.9")
    upstream, request = resource_spans.scope_spans[0].spans
    assert request.trace_id.hex() == TRACE == upstream.trace_id.hex()
    assert request.parent_span_id.hex() == "b7ad6b7169203331" and upstream.parent_span_id == request.span_id
    assert request.kind == SpanProto.SPAN_KIND_SERVER and upstream.kind == SpanProto.SPAN_KIND_CLIENT
    assert request.name == "tools/call up__echo" and request.trace_state == "v=1"
    assert 0 < request.start_time_unix_nano <= upstream.start_time_unix_nano <= upstream.end_time_unix_nano
    values = {a.key: a.value for a in request.attributes}
    assert values["count"].int_value == 1 and values["flag"].bool_value and values["ratio"].double_value == 1.0
    assert values["text"].string_value == "1"
    assert request.status.code == Status.STATUS_CODE_UNSET and request.flags & 0x300 == 0x300
    assert upstream.status.code == Status.STATUS_CODE_ERROR and upstream.status.message == "upstream unavailable"
    assert {a.key: a.value.string_value for a in upstream.attributes} == {"bastion.upstream": "up", "error.type": "-32001"}


def test_equal_attribute_values_of_different_types_keep_their_types() -> None:
    encoder = SpanEncoder({}, "bastion", "9.9")
    spans = []
    for value in (1, True, 1.0):
        span = Tracer(Sampler(), spans.append).request(SERVER, None)
        span.name, span.attributes = "x", {"value": value}
        span.end()
    decoded = ExportTraceServiceRequest.FromString(encoder.request(spans)).resource_spans[0].scope_spans[0].spans
    assert [s.attributes[0].value.WhichOneof("value") for s in decoded] == ["int_value", "bool_value", "double_value"]


def test_text_protobuf_cannot_carry_is_replaced_and_large_integers_kept_as_text() -> None:
    """A lone surrogate (JSON allows one in a client's tool name or error text) in a span's name,
    attributes, status or tracestate would fail the encoding of the whole batch it is in."""
    spans: list[Span] = []
    span = Tracer(Sampler(), spans.append).request(SERVER, Parent(7, 9, True, "v=1"))
    assert isinstance(span, Span)
    span.name, span.tracestate = "tools/call x\ud800", "v=\udfff"
    span.attributes = {"gen_ai.tool.name": "x\ud800", "k\ud800": 1, "big": 1 << 63, "top": (1 << 63) - 1, "bottom": -(1 << 63)}
    span.fail("tool_error", "bad \ud800")
    span.end()
    decoded = ExportTraceServiceRequest.FromString(SpanEncoder({}, "bastion", "9.9").request(spans)).resource_spans[0].scope_spans[0].spans[0]
    assert decoded.name == "tools/call x\ufffd" and decoded.trace_state == "v=\ufffd"
    values = {a.key: a.value for a in decoded.attributes}
    assert values["gen_ai.tool.name"].string_value == "x\ufffd" and values["k\ufffd"].int_value == 1
    assert values["big"].string_value == str(1 << 63)
    assert (values["top"].int_value, values["bottom"].int_value) == ((1 << 63) - 1, -(1 << 63))
    assert decoded.status.message == "bad \ufffd"
