"""Observe: the first stage. Times every request and tells the observers (metrics, logs, audit,
usage) how it ended, including refusals by later stages. Observers record in memory only.

The gateway tells them a batch at a time (`CallBatch`): a finished call is one list append on the
request's path, and the observers run over the calls of the last moment together, after a short
delay or once enough have finished. The same observer code costs about a third as much that way
as between two requests, whose HTTP parsing and upstream round trip have evicted it from the CPU's
caches (the JSON log line: 41 us a call between requests in the gateway, 13 in a loop).
Anything that reads what the observers hold (a metrics scrape, the audit and usage flushes) drains
the batch first, so a reader never misses a finished call.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence

import anyio

from bastion.core.errors import BastionError, UpstreamRpcError
from bastion.core.hidden_text import reveal
from bastion.core.models import CatalogItem
from bastion.core.observation import AUDITED_METHODS, CallRecord, outcome_of_error, outcome_of_result
from bastion.core.ports import BatchCallObserver, CallObserver
from bastion.core.tracing import SERVER, Span, Tracer
from bastion.pipeline.base import Next, Result, Stage
from bastion.pipeline.context import CallContext
from bastion.pipeline.tracing import current_span, finish, incoming_parent, request_attributes

log = logging.getLogger("bastion.calls")
_MAX_ASKED = 200
"""A made-up name is kept for the audit only this long (it costs the caller nothing to send a long one)."""


Finished = tuple[CallContext, float, float, float, str, str | None, Result | None]
"""A finished call before its record is made: context, start (epoch), seconds, upstream seconds,
outcome, error, result (the times as they were when it finished: a bridged call may go on upstream)."""


class CallBatch:
    """Finished calls waiting to be told to the observers: told when `size` have finished, `delay`
    seconds after the first of them, or when something drains the batch (a reader, shutdown).

    With `size` 1 every call is told as it finishes (no timer). Without a running asyncio loop
    (a call made outside one), calls are told at once as well. A batch that fills is told by the
    call that filled it, before that call's result goes back (once per `size` calls).
    """

    def __init__(self, observers: Sequence[CallObserver], *, size: int = 1, delay: float = 0.1) -> None:
        self.observers = tuple(observers)
        self._tellers = tuple(
            (o, o.calls_finished if isinstance(o, BatchCallObserver) else None) for o in self.observers
        )
        self._size = max(1, size)
        self._delay = delay
        self._pending: list[Finished] = []
        self._armed = False

    def add(self, finished: Finished) -> None:
        pending = self._pending
        pending.append(finished)
        if len(pending) >= self._size:
            self.drain()
        elif not self._armed:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.drain()
                return
            self._armed = True
            loop.call_later(self._delay, self._timer)

    def _timer(self) -> None:
        self._armed = False
        self.drain()

    def drain(self) -> None:
        """Tell the observers of every call finished so far: each observer the whole batch in turn
        (its code stays warm over the batch), in the order the calls finished."""
        if not self._pending:
            return
        told, self._pending = self._pending, []
        records = []
        for finished in told:
            try:
                records.append(_record(*finished))
            except Exception:  # one bad record must not cost the others, nor the flush that drained
                log.exception("a finished call could not be recorded")
        for observer, many in self._tellers:
            if many is not None:
                try:
                    many(records)
                except Exception:
                    log.exception("an observer failed")
                continue
            for record in records:
                try:
                    observer.call_finished(record)
                except Exception:  # this record only: the observer still hears of the rest
                    log.exception("an observer failed")


def observe_stage(
    observers: Sequence[CallObserver] | CallBatch, tracer: Tracer | None = None, unsampled: Next | None = None
) -> Stage:
    """The first stage; with `tracer`, a request the sampler leaves out runs `unsampled` (the same
    stages without their span wrappers) instead of the next stage."""
    batch = observers if isinstance(observers, CallBatch) else CallBatch(observers)

    async def observe(ctx: CallContext, call_next: Next) -> Result:
        if tracer is None:
            return await _observed(ctx, call_next, batch, None)
        span = tracer.request(SERVER, incoming_parent(ctx))
        if isinstance(span, dict):  # unsampled: no span, only the context it passes upstream
            ctx.trace = span
            return await _observed(ctx, call_next if unsampled is None else unsampled, batch, None)
        attributes = span.attributes = request_attributes(ctx)
        item = attributes.get("gen_ai.tool.name") or attributes.get("gen_ai.prompt.name")
        span.name = f"{ctx.method} {item}" if item else ctx.method
        token = current_span.set(span)
        try:
            return await _observed(ctx, call_next, batch, span)
        finally:
            current_span.reset(token)
            span.end()

    return observe


async def _observed(ctx: CallContext, call_next: Next, batch: CallBatch, span: Span | None) -> Result:
    started = time.time()
    start = time.perf_counter()
    result: Result | None = None
    outcome, error = "error", None
    failure: BaseException | None = None
    try:
        result = await call_next(ctx)
        outcome = outcome_of_result(result)
        return result
    except BastionError as exc:
        outcome, error, failure = outcome_of_error(exc), _described(exc), exc
        raise
    except Exception as exc:
        outcome, error, failure = "error", type(exc).__name__, exc
        raise
    except BaseException as exc:
        if isinstance(exc, anyio.get_cancelled_exc_class()):  # the caller cancelled it or went away
            outcome, failure = "cancelled", exc
        raise
    finally:
        if span is not None:
            finish(span, ctx, outcome, failure)
        if batch.observers:
            batch.add((ctx, started, time.perf_counter() - start, ctx.upstream_seconds, outcome, error, result))


def _record(
    ctx: CallContext, started: float, seconds: float, upstream_seconds: float, outcome: str, error: str | None, result: Result | None
) -> CallRecord:
    item, principal = ctx.item or _known_item(ctx), ctx.principal
    return CallRecord(
        request_id=f"{random.getrandbits(64):016x}",  # a log correlation id, not a secret: no getrandom call
        started=started,
        server=ctx.server if ctx.view is not None else "",
        method=ctx.method,
        outcome=outcome,
        seconds=seconds,
        upstream_seconds=upstream_seconds,
        upstream=item.upstream if item is not None else None,
        item=(item.name_override or item.gateway_name) if item is not None else None,
        asked=_asked(ctx) if item is None else None,
        kind=item.kind if item is not None else None,
        principal=principal.id if principal is not None else None,
        user=principal.user if principal is not None else None,
        token=principal.token if principal is not None else None,
        address=ctx.address,
        error=error,
        params=ctx.params,
        result=result,
    )


def _known_item(ctx: CallContext) -> CatalogItem | None:
    """For a call refused before route (rate limit): the item it named, if the server has it. Never
    a name only the client made up (labels and records stay bounded by the catalog)."""
    view, name = ctx.view, ctx.params.get("name")
    if view is None or not isinstance(name, str):
        return None
    if ctx.method == "tools/call":
        return view.tools.get(name)
    return view.prompts.get(name) if ctx.method == "prompts/get" else None


def _asked(ctx: CallContext) -> str | None:
    """The name (or URI) a use of an unknown item asked for, as the audit may keep it."""
    if ctx.method not in AUDITED_METHODS:
        return None
    name = ctx.params.get("uri" if ctx.method == "resources/read" else "name")
    return reveal(name[:_MAX_ASKED]) if isinstance(name, str) else None


def _described(exc: BastionError) -> str:
    """Bastion's own words for a failure; an upstream's error message may echo arguments, so only its code."""
    if isinstance(exc, UpstreamRpcError):
        return f"{exc.title} (code {exc.rpc_code})"
    return f"{exc.title}: {exc.detail}"


observe = observe_stage(())
"""The stage without observers (a pipeline built without telemetry)."""
