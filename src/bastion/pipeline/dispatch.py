"""Dispatch: send the routed request to its upstream through the pool, within the deadline."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from bastion.core.errors import BastionError, UpstreamProtocolError
from bastion.core.ports import AskCallback, UpstreamCaller
from bastion.pipeline.base import Next, Result, Stage
from bastion.pipeline.context import CallContext, client_of, holder_of
from bastion.pipeline.tracing import current_span, outgoing_meta, upstream_span

MAX_INPUT_ROUNDS = 10


def dispatch_stage(
    pool: UpstreamCaller, timeout: float, server_info: dict[str, Any]
) -> Stage:
    async def dispatch(ctx: CallContext, call_next: Next) -> Result:
        item = ctx.item
        params = ctx.upstream_params
        assert item is not None and params is not None, "route runs before dispatch"
        hooks = ctx.hooks
        if hooks is not None and hooks.on_dispatch is not None:
            await hooks.on_dispatch()
        principal = ctx.principal
        # Per-user connections (and per-user upstream tokens) are keyed by the verified user, so one
        # user's session and API tokens share them; callers without a user (admin, local) by their id.
        user = (principal.user or principal.id) if principal is not None else None
        caller, client = holder_of(principal), client_of(principal)

        def send(p: dict[str, Any]) -> Awaitable[dict[str, Any]]:
            return pool.request(
                item.upstream, ctx.method, p, user=user, timeout=timeout, hooks=ctx.hooks, caller=caller, client=client
            )

        result = await _timed(ctx, params, send)
        ask = ctx.hooks.ask if ctx.hooks is not None else None
        rounds = 0
        while ask is not None and result.get("resultType") == "input_required":
            # Bridge: a 2025-11-25 client cannot read `input_required`; ask it each question as a
            # live request on its session and retry the upstream with the answers.
            rounds += 1
            if rounds > MAX_INPUT_ROUNDS:
                raise UpstreamProtocolError(f"upstream {item.upstream!r} asked for input more than {MAX_INPUT_ROUNDS} times")
            params = await _answered(params, result, ask)
            result = await _timed(ctx, params, send)
        meta = result.get("_meta")
        if isinstance(meta, dict) and any(k.endswith("serverInfo") for k in meta):
            # The client talks to Bastion: never leak which server answered behind it.
            result["_meta"] = {k: (server_info if k.endswith("serverInfo") else v) for k, v in meta.items()}
        return result

    return dispatch


async def _timed(
    ctx: CallContext,
    params: dict[str, Any],
    request: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """One upstream attempt: its time is added to the context's upstream time (also on failure).
    With tracing, the request's trace context travels upstream in `_meta`; a sampled request's
    attempt is a client span of its own, whose context that is."""
    start = time.perf_counter()
    trace = ctx.trace
    parent = current_span.get() if trace is None else None
    if parent is None:  # tracing off, or an unsampled request
        try:
            return await request(params if trace is None else outgoing_meta(params, trace))
        finally:
            ctx.upstream_seconds += time.perf_counter() - start
    span = upstream_span(ctx, parent)
    token = current_span.set(span)
    try:
        return await request(outgoing_meta(params, span.context()))
    except Exception as exc:
        span.fail(str(exc.jsonrpc_code) if isinstance(exc, BastionError) else type(exc).__name__, type(exc).__name__)
        raise
    finally:
        current_span.reset(token)
        span.end()
        ctx.upstream_seconds += time.perf_counter() - start


async def _answered(params: dict[str, Any], asked: dict[str, Any], ask: AskCallback) -> dict[str, Any]:
    """The retry's params: the original ones, the client's answers, and the upstream's state."""
    requests = asked.get("inputRequests") or {}
    if not isinstance(requests, dict):
        raise UpstreamProtocolError("an input_required result carried inputRequests that is not an object")
    answers: dict[str, Any] = {}
    for key, request in requests.items():
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            raise UpstreamProtocolError(f"input request {key!r} has no method")
        answers[key] = await ask(request["method"], request.get("params") or {})
    retry = {k: v for k, v in params.items() if k not in ("inputResponses", "requestState")}
    if answers:
        retry["inputResponses"] = answers
    if isinstance(asked.get("requestState"), str):
        retry["requestState"] = asked["requestState"]
    return retry
