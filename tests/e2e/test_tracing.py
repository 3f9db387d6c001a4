"""Traces with an in-process OTLP/HTTP receiver: a real call through a real upstream is one span tree
in the client's trace, and the trace context reaches the upstream."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.harness import (
    TOKEN,
    Running,
    http_fixture,
    open_raw_session,
    serve,
    serve_asgi,
    session_headers,
    settings_for,
)
from tests.vault.test_upstream_oauth import oauth_body, oauth_world

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
PLANTED = "planted-argument-93b1"


class Receiver:
    """Collects the spans exporters POST to /v1/traces."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.resources: list[dict[str, str]] = []
        self.headers: list[dict[str, str]] = []
        self.changed = anyio.Event()

    async def traces(self, request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        message = ExportTraceServiceRequest.FromString(body)
        self.headers.append(dict(request.headers))
        for resource in message.resource_spans:
            self.resources.append({a.key: a.value.string_value for a in resource.resource.attributes})
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)
        self.changed.set()
        self.changed = anyio.Event()
        body = ExportTraceServiceResponse().SerializeToString()
        return Response(body, media_type="application/x-protobuf")

    async def wait_for(self, name: str, trace_id: str) -> Span:
        with anyio.fail_after(15):
            while True:
                for span in self.spans:
                    if span.name == name and span.trace_id.hex() == trace_id:
                        return span
                await self.changed.wait()


@asynccontextmanager
async def receiving(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Receiver]:
    """An OTLP/HTTP receiver that Bastions started from now on export their spans to."""
    receiver = Receiver()
    app = Starlette(routes=[Route("/v1/traces", receiver.traces, methods=["POST"])])
    async with serve_asgi(app) as url:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{url}/v1/traces")
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        yield receiver


@pytest.fixture
async def traced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Running, Receiver]]:
    async with receiving(monkeypatch) as receiver:
        with http_fixture("streamable-http") as upstream:
            async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", rate_limit_server="1000/minute")) as gw:
                await gw.register(upstream.body("fx"))
                await gw.create_server({"name": "vs", "tools": ["fx__whoami", "fx__echo"]})
                yield gw, receiver


async def _call(gw: Running, tool: str, arguments: dict[str, Any], meta: dict[str, Any], headers: dict[str, str]) -> Any:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": tool,
            "arguments": arguments,
            "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}, **meta},
        },
    }
    headers = {
        "authorization": f"Bearer {TOKEN}",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/call",
        "mcp-name": tool,
        "content-type": "application/json",
        **headers,
    }
    async with httpx2.AsyncClient() as http:  # json.dumps escapes what UTF-8 cannot carry (a lone surrogate)
        response = await http.post(gw.mcp_url("vs"), content=json.dumps(body).encode(), headers=headers)
    return response.json()["result"]


def _attributes(span: Span) -> dict[str, str]:
    return {a.key: a.value.string_value for a in span.attributes}


async def test_a_call_is_one_span_tree_in_the_clients_trace(traced: tuple[Running, Receiver]) -> None:
    gw, receiver = traced
    traceparent = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"
    result = await _call(gw, "fx__whoami", {}, {"traceparent": traceparent}, {})
    seen_upstream = json.loads(result["content"][0]["text"])
    assert seen_upstream["traceparent"].split("-")[1] == TRACE_ID  # propagated as an HTTP header too
    await _call(gw, "fx__echo", {"text": PLANTED}, {"traceparent": traceparent}, {})
    assert gw.bastion.telemetry is not None and gw.bastion.telemetry.tracing is not None
    await anyio.to_thread.run_sync(gw.bastion.telemetry.tracing.flush)

    root = await receiver.wait_for("tools/call fx__whoami", TRACE_ID)
    assert root.parent_span_id.hex() == CLIENT_SPAN and root.kind == Span.SPAN_KIND_SERVER
    assert _attributes(root)["mcp.method.name"] == "tools/call"
    assert _attributes(root)["gen_ai.tool.name"] == "fx__whoami"
    assert _attributes(root)["bastion.outcome"] == "ok"
    children = {s.name: s for s in receiver.spans if s.parent_span_id == root.span_id}
    assert {"bastion.policy", "bastion.rate_limit", "upstream tools/call"} <= set(children)
    upstream = children["upstream tools/call"]
    assert upstream.kind == Span.SPAN_KIND_CLIENT and upstream.trace_id.hex() == TRACE_ID
    assert seen_upstream["traceparent"].split("-")[2] == upstream.span_id.hex()  # the upstream's parent is our span

    await receiver.wait_for("tools/call fx__echo", TRACE_ID)
    for span in receiver.spans:
        assert all(PLANTED not in str(a.value) for a in span.attributes)


async def test_the_http_traceparent_header_is_used_without_meta(traced: tuple[Running, Receiver]) -> None:
    gw, receiver = traced
    other = "4bf92f3577b34da6a3ce929d0e0e4736"
    await _call(gw, "fx__whoami", {}, {}, {"traceparent": f"00-{other}-00f067aa0ba902b7-01"})
    assert gw.bastion.telemetry is not None and gw.bastion.telemetry.tracing is not None
    await anyio.to_thread.run_sync(gw.bastion.telemetry.tracing.flush)
    root = await receiver.wait_for("tools/call fx__whoami", other)
    assert root.parent_span_id.hex() == "00f067aa0ba902b7"


async def test_a_credential_renewed_during_a_call_is_a_vault_span_under_the_upstream_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        receiving(monkeypatch) as receiver,
        oauth_world() as (world, upstream_url, token_url),
        serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gw,
    ):
        await gw.register(oauth_body("fx", "streamable-http", upstream_url, token_url))
        await gw.create_server({"name": "vs", "tools": ["fx__whoami"]})
        held = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"
        await _call(gw, "fx__whoami", {}, {"traceparent": held}, {})  # the token from registration, held in memory
        world.revoke_all()  # the next call's first attempt is refused (401): Bastion renews its token mid-call
        renewed = "5bf92f3577b34da6a3ce929d0e0e4736"
        seen = json.loads((await _call(gw, "fx__whoami", {}, {"traceparent": f"00-{renewed}-{CLIENT_SPAN}-01"}, {}))["content"][0]["text"])
        assert seen["authorization"] == "Bearer tok-2"
        assert gw.bastion.telemetry is not None and gw.bastion.telemetry.tracing is not None
        await anyio.to_thread.run_sync(gw.bastion.telemetry.tracing.flush)

        vault = await receiver.wait_for("bastion.vault", renewed)
        assert _attributes(vault) == {"bastion.vault.operation": "client_credentials", "bastion.upstream": "fx"}
        parents = {s.span_id: s for s in receiver.spans if s.trace_id.hex() == renewed}
        assert parents[vault.parent_span_id].name == "upstream tools/call"
        await receiver.wait_for("tools/call fx__whoami", TRACE_ID)
        assert not [s for s in receiver.spans if s.trace_id.hex() == TRACE_ID and s.name == "bastion.vault"]
        assert not [s for s in receiver.spans if "cs-very-private" in str(list(s.attributes))]


async def test_a_facade_call_continues_the_callers_trace(traced: tuple[Running, Receiver]) -> None:
    gw, receiver = traced
    other = "5cf92f3577b34da6a3ce929d0e0e4737"
    headers = {"traceparent": f"00-{other}-00f067aa0ba902b8-01"}
    response = await gw.api.post("/api/v1/servers/vs/tools/fx__whoami", json={}, headers=headers)
    assert response.status_code == 200, response.text
    seen_upstream = json.loads(response.json()["content"][0]["text"])
    assert seen_upstream["traceparent"].split("-")[1] == other
    assert gw.bastion.telemetry is not None and gw.bastion.telemetry.tracing is not None
    await anyio.to_thread.run_sync(gw.bastion.telemetry.tracing.flush)
    root = await receiver.wait_for("tools/call fx__whoami", other)
    assert root.parent_span_id.hex() == "00f067aa0ba902b8"


async def _flush(gw: Running) -> None:
    assert gw.bastion.telemetry is not None and gw.bastion.telemetry.tracing is not None
    await anyio.to_thread.run_sync(gw.bastion.telemetry.tracing.flush)


async def test_a_client_trace_that_is_not_sampled_records_nothing_and_still_reaches_the_upstream(
    traced: tuple[Running, Receiver],
) -> None:
    gw, receiver = traced  # the default sampler: parentbased_always_on
    result = await _call(gw, "fx__whoami", {}, {"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-00"}, {})
    version, trace_id, parent, flags = json.loads(result["content"][0]["text"])["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "00") and parent != CLIENT_SPAN
    await _flush(gw)
    assert receiver.spans == []


async def test_the_otel_settings_choose_sampling_resource_and_export_headers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing-gateway")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=acme")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    async with receiving(monkeypatch) as receiver:
        with http_fixture("streamable-http") as upstream:
            async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gw:
                await gw.register(upstream.body("fx"))
                await gw.create_server({"name": "vs", "tools": ["fx__whoami"]})
                await _call(gw, "fx__whoami", {}, {}, {})  # a root of our own: ratio 0, not sampled
                await _flush(gw)
                assert receiver.spans == []
                await _call(gw, "fx__whoami", {}, {"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01"}, {})  # parent sampled
                await _flush(gw)
                await receiver.wait_for("tools/call fx__whoami", TRACE_ID)
                assert {s.trace_id.hex() for s in receiver.spans} == {TRACE_ID}
                resource = receiver.resources[0]
                assert resource["service.name"] == "billing-gateway"
                assert resource["deployment.environment"] == "test"
                assert resource["service.instance.id"]
                assert receiver.headers[0]["x-tenant"] == "acme"
                assert receiver.headers[0]["content-type"] == "application/x-protobuf"
                assert receiver.headers[0]["content-encoding"] == "gzip"


async def test_text_a_client_chose_that_cannot_be_utf8_neither_fails_the_call_nor_loses_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JSON lets a client write a lone surrogate (`"\\ud800"`); UTF-8, and so protobuf and HTTP headers,
    cannot carry one. The gateway refuses such a body as invalid JSON (-32700) before any span, so it
    costs no span and the other calls' spans in the same export batch are not lost. A tracestate
    with anything but printable ASCII (as W3C requires) is dropped rather than sent upstream as a
    header. (A span named with a surrogate is tests/telemetry/test_spans.py's.)"""
    async with receiving(monkeypatch) as receiver:
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")  # every span below goes in one batch, at the flush
        with http_fixture("streamable-http") as upstream:
            async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gw:
                await gw.register(upstream.body("fx"))
                await gw.create_server({"name": "vs", "tools": ["fx__whoami"]})
                traceparent = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"
                unsendable = await _call(gw, "fx__whoami", {}, {"traceparent": traceparent, "tracestate": "v=caf\u00e9"}, {})
                seen = json.loads(unsendable["content"][0]["text"])
                assert seen["traceparent"].split("-")[1] == TRACE_ID and "tracestate" not in seen
                kept = await _call(gw, "fx__whoami", {}, {"traceparent": traceparent, "tracestate": "v=ok"}, {})
                assert json.loads(kept["content"][0]["text"])["tracestate"] == "v=ok"
                async with httpx2.AsyncClient() as http:
                    session = await open_raw_session(http, gw.mcp_url("vs"))
                    body = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                            "params": {"name": "fx__who\ud800", "arguments": {}, "_meta": {"traceparent": traceparent}}}
                    refused = await http.post(gw.mcp_url("vs"), content=json.dumps(body).encode(), headers=session_headers(session))
                    assert refused.status_code == 400 and refused.json()["error"]["code"] == -32700  # not JSON text
                    body["params"]["name"] = "fx__who\u00e9"
                    unknown = await http.post(gw.mcp_url("vs"), content=json.dumps(body).encode(), headers=session_headers(session))
                assert unknown.status_code == 200 and "error" in unknown.json()  # no such tool: a JSON-RPC error
                await _flush(gw)
                with anyio.fail_after(15):
                    while len([s for s in receiver.spans if s.parent_span_id.hex() == CLIENT_SPAN]) < 3:
                        await receiver.changed.wait()
                roots = [s for s in receiver.spans if s.parent_span_id.hex() == CLIENT_SPAN]
                assert sorted(s.trace_state for s in roots) == ["", "", "v=ok"]
                assert sorted(s.name for s in roots) == ["tools/call fx__whoami", "tools/call fx__whoami", "tools/call fx__who\u00e9"]
                named = next(s for s in roots if s.name.endswith("\u00e9"))
                assert _attributes(named)["gen_ai.tool.name"] == "fx__who\u00e9"


async def test_with_tracing_off_a_clients_trace_context_reaches_the_upstream_only_when_a_header_can_carry_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without tracing Bastion passes the client's `_meta` trace context on as it came, as headers too
    on HTTP; a tracestate with a CR/LF (or anything but printable ASCII) stays in `_meta` only. It
    reached aiohttp's header check, whose ValueError ended the call as an internal error."""
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    with http_fixture("streamable-http") as upstream:
        async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gw:
            assert gw.bastion.telemetry is None or gw.bastion.telemetry.tracing is None
            await gw.register(upstream.body("fx"))
            await gw.create_server({"name": "vs", "tools": ["fx__whoami"]})
            traceparent = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"
            for tracestate in ("v=1\r\nx-injected: 1", "v=caf\u00e9"):
                result = await _call(gw, "fx__whoami", {}, {"traceparent": traceparent, "tracestate": tracestate}, {})
                seen = json.loads(result["content"][0]["text"])
                assert seen["traceparent"] == traceparent and "tracestate" not in seen and "x-injected" not in seen
            kept = await _call(gw, "fx__whoami", {}, {"traceparent": traceparent, "tracestate": "v=ok"}, {})
            assert json.loads(kept["content"][0]["text"])["tracestate"] == "v=ok"
