"""Spans for the pipeline (when tracing is on): one per MCP request, children per stage that
decides something (policy, rate limit), per upstream attempt, and for the vault when a call has to
read or renew an upstream credential (`vault_span`; a token held in memory costs no span). Names and attributes follow the
MCP and GenAI semantic conventions where they exist; argument values are never attributes.

Trace context comes in from the client (`_meta.traceparent` as the 2026-07-28 revision defines
it, else the HTTP `traceparent` header) and goes out to the upstream in `_meta` (every transport)
and, on HTTP, as a header (see upstream/modern_http.py). Spans are `core.tracing` spans started
with explicit parents: the one context variable below names the span that code further down (the
upstream attempt, the vault) starts its children under. An unsampled request has no span: its
context carries the `_meta` entries it passes upstream (`CallContext.trace`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from bastion.core.errors import BastionError
from bastion.core.tracing import CLIENT, INTERNAL, Parent, Span, parse_traceparent
from bastion.pipeline.base import Next, Result, Stage
from bastion.pipeline.context import CallContext

TRACE_KEYS = ("traceparent", "tracestate")

current_span: ContextVar[Span | None] = ContextVar("bastion_current_span", default=None)
"""The span of the sampled request (or upstream attempt) being served; None otherwise."""


@contextmanager
def vault_span(operation: str, upstream: str) -> Iterator[None]:
    """A `bastion.vault` span around reading or renewing an upstream credential within a traced
    request (nothing otherwise): the store's sealed record, or the token endpoint's answer."""
    parent = current_span.get()
    if parent is None:
        yield
        return
    span = parent.child("bastion.vault", INTERNAL, {"bastion.vault.operation": operation, "bastion.upstream": upstream})
    token = current_span.set(span)
    try:
        yield
    except Exception as exc:
        span.fail(type(exc).__name__, type(exc).__name__)
        raise
    finally:
        current_span.reset(token)
        span.end()


def incoming_parent(ctx: CallContext) -> Parent | None:
    """The client's trace context: `_meta` first, then the HTTP headers the edge kept."""
    meta = ctx.params.get("_meta")
    for carrier in (meta if isinstance(meta, dict) else None, ctx.trace_headers):
        if carrier:
            traceparent = carrier.get("traceparent")
            if isinstance(traceparent, str):
                state = carrier.get("tracestate")
                parent = parse_traceparent(traceparent, state if isinstance(state, str) else None)
                if parent is not None:
                    return parent
    return None


def request_attributes(ctx: CallContext) -> dict[str, Any]:
    attributes: dict[str, Any] = {"mcp.method.name": ctx.method, "bastion.virtual_server": ctx.server}
    name = ctx.params.get("name")
    if ctx.method == "tools/call" and isinstance(name, str):
        attributes["gen_ai.tool.name"] = name
        attributes["gen_ai.operation.name"] = "execute_tool"
    elif ctx.method == "prompts/get" and isinstance(name, str):
        attributes["gen_ai.prompt.name"] = name
    return attributes


def finish(span: Span, ctx: CallContext, outcome: str, error: BaseException | None) -> None:
    attributes = span.attributes
    attributes["bastion.outcome"] = outcome
    if ctx.item is not None:
        attributes["bastion.upstream"] = ctx.item.upstream
        if ctx.method == "resources/read":
            attributes["mcp.resource.uri"] = ctx.item.gateway_name  # the catalog's name, not the request's
    if error is not None:
        code = getattr(error, "jsonrpc_code", None)
        error_type = str(code) if isinstance(error, BastionError) and code else type(error).__name__
        span.fail(error_type, getattr(error, "title", type(error).__name__))
    elif outcome == "tool_error":
        span.fail("tool_error", "tool error")


def traced(name: str, stage: Stage) -> Stage:
    """`stage` inside a span of its own, under the request's, that ends when it hands on (so stages
    are siblings). Only in the chain a sampled request runs."""

    async def run(ctx: CallContext, call_next: Next) -> Result:
        parent = current_span.get()
        if parent is None:
            return await stage(ctx, call_next)
        span = parent.child(name, INTERNAL)

        async def handed_on(next_ctx: CallContext) -> Result:
            span.end()
            return await call_next(next_ctx)

        try:
            return await stage(ctx, handed_on)
        except BastionError as exc:
            if not span.end_ns:
                span.fail(str(exc.jsonrpc_code), exc.title)
            raise
        finally:
            span.end()

    return run


def upstream_span(ctx: CallContext, parent: Span) -> Span:
    """The client span of one upstream attempt of a sampled request."""
    upstream = ctx.item.upstream if ctx.item is not None else ""
    return parent.child(f"upstream {ctx.method}", CLIENT, {"mcp.method.name": ctx.method, "bastion.upstream": upstream})


def outgoing_meta(params: dict[str, Any], context: dict[str, str]) -> dict[str, Any]:
    """`params` with this trace context (`_meta` entries) in `_meta`, replacing the client's."""
    meta = params.get("_meta")
    if not meta or not isinstance(meta, dict):
        return {**params, "_meta": {**context}}
    return {**params, "_meta": {**{k: v for k, v in meta.items() if k not in TRACE_KEYS}, **context}}


def trace_headers(headers: Mapping[str, str]) -> dict[str, str] | None:
    """The trace context headers of an HTTP request, for `CallContext.trace_headers`."""
    found = {k: headers[k] for k in TRACE_KEYS if k in headers}
    return found or None
