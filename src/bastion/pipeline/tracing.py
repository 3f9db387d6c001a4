"""Spans for the pipeline (when tracing is on): one per MCP request, children per stage that
decides something (policy, rate limit), per upstream attempt, and for the vault when a call has to
read or renew an upstream credential (`vault_span`; a token held in memory costs no span). Names and attributes follow the
MCP and GenAI semantic conventions where they exist; argument values are never attributes.

Trace context comes in from the client (`_meta.traceparent` as the 2026-07-28 revision defines
it, else the HTTP `traceparent` header) and goes out to the upstream in `_meta` (every transport)
and, on HTTP, as a header (see upstream/modern_http.py; the SDK's own transports inject `_meta`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry.context import Context, attach, detach
from opentelemetry.propagate import extract, inject
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, get_current_span, set_span_in_context

from bastion.core.errors import BastionError
from bastion.pipeline.base import Next, Result, Stage
from bastion.pipeline.context import CallContext

TRACE_KEYS = ("traceparent", "tracestate")

# The tracer of the request being served, for code below the pipeline (credential sources) that
# has no tracer of its own: set by the observe stage, None when tracing is off.
request_tracer: ContextVar[Tracer | None] = ContextVar("bastion_request_tracer", default=None)


@contextmanager
def vault_span(operation: str, upstream: str) -> Iterator[None]:
    """A `bastion.vault` span around reading or renewing an upstream credential within a traced
    request (nothing otherwise): the store's sealed record, or the token endpoint's answer."""
    tracer = request_tracer.get()
    if tracer is None:
        yield
        return
    attributes = {"bastion.vault.operation": operation, "bastion.upstream": upstream}
    with tracer.start_as_current_span("bastion.vault", kind=SpanKind.INTERNAL, attributes=attributes):
        yield


def incoming_context(ctx: CallContext) -> Context | None:
    """The client's trace context: `_meta` first, then the HTTP headers the edge kept."""
    meta = ctx.params.get("_meta")
    for carrier in (meta if isinstance(meta, dict) else None, ctx.trace_headers):
        if carrier and isinstance(carrier.get("traceparent"), str):
            try:
                found = extract({k: str(carrier[k]) for k in TRACE_KEYS if k in carrier})
            except (ValueError, TypeError):
                continue
            if get_current_span(found).get_span_context().is_valid:
                return found
    return None


def request_attributes(ctx: CallContext) -> dict[str, Any]:
    attributes: dict[str, Any] = {"mcp.method.name": ctx.method, "bastion.virtual_server": ctx.server}
    name = ctx.params.get("name")
    if ctx.method == "tools/call" and isinstance(name, str):
        attributes |= {"gen_ai.tool.name": name, "gen_ai.operation.name": "execute_tool"}
    elif ctx.method == "prompts/get" and isinstance(name, str):
        attributes["gen_ai.prompt.name"] = name
    return attributes


def finish(span: Span, ctx: CallContext, outcome: str, error: BaseException | None) -> None:
    span.set_attribute("bastion.outcome", outcome)
    if ctx.item is not None:
        span.set_attribute("bastion.upstream", ctx.item.upstream)
        if ctx.method == "resources/read":
            span.set_attribute("mcp.resource.uri", ctx.item.gateway_name)  # the catalog's name, not the request's
    if error is not None:
        code = getattr(error, "jsonrpc_code", None)
        span.set_attribute("error.type", str(code) if isinstance(error, BastionError) and code else type(error).__name__)
        span.set_status(Status(StatusCode.ERROR, getattr(error, "title", type(error).__name__)))
    elif outcome == "tool_error":
        span.set_attribute("error.type", "tool_error")
        span.set_status(Status(StatusCode.ERROR, "tool error"))


def traced(tracer: Tracer, name: str, stage: Stage) -> Stage:
    """`stage` inside a span of its own that ends when it hands on (so stages are siblings)."""

    async def run(ctx: CallContext, call_next: Next) -> Result:
        span = tracer.start_span(name, kind=SpanKind.INTERNAL)
        token: object | None = attach(set_span_in_context(span))

        def end() -> None:
            nonlocal token
            if token is not None:
                detach(token)  # type: ignore[arg-type]
                token = None
                span.end()

        async def handed_on(next_ctx: CallContext) -> Result:
            end()
            return await call_next(next_ctx)

        try:
            return await stage(ctx, handed_on)
        except BastionError as exc:
            if token is not None:
                span.set_status(Status(StatusCode.ERROR, exc.title))
                span.set_attribute("error.type", str(exc.jsonrpc_code))
            raise
        finally:
            end()

    return run


def outgoing_meta(params: dict[str, Any]) -> dict[str, Any]:
    """`params` with the current span's trace context in `_meta` (replacing the client's)."""
    meta = {k: v for k, v in (params.get("_meta") or {}).items() if k not in TRACE_KEYS}
    carrier: dict[str, str] = {}
    inject(carrier)
    return {**params, "_meta": {**meta, **carrier}} if carrier else params


def trace_headers(headers: Mapping[str, str]) -> dict[str, str] | None:
    """The trace context headers of an HTTP request, for `CallContext.trace_headers`."""
    found = {k: headers[k] for k in TRACE_KEYS if k in headers}
    return found or None
