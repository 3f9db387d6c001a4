"""The one ordered request pipeline, shared by every MCP endpoint and the REST facade."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bastion.core.ports import CallObserver, RateLimiter, ResourceSubscriber, UpstreamCaller
from bastion.core.ratelimit import Defaults
from bastion.core.snapshot import Snapshot
from bastion.core.tracing import Tracer
from bastion.pipeline.authn import Authenticator, authenticate_stage
from bastion.pipeline.authz import authorize
from bastion.pipeline.base import Next, Stage, chain
from bastion.pipeline.bridge import Bridge
from bastion.pipeline.discover import discover
from bastion.pipeline.dispatch import dispatch_stage
from bastion.pipeline.observe import CallBatch, observe_stage
from bastion.pipeline.ratelimit import ratelimit_stage
from bastion.pipeline.resolve import resolve_stage
from bastion.pipeline.route import route_stage
from bastion.pipeline.subscribe import subscribe_stage
from bastion.pipeline.tracing import traced
from bastion.pipeline.validate import validate


def build_pipeline(
    snapshot: Callable[[], Snapshot],
    pool: UpstreamCaller,
    authenticator: Authenticator,
    *,
    timeout: float,
    server_info: dict[str, Any],
    page_size: int = 500,
    bridge: Bridge | None = None,
    limiter: RateLimiter | None = None,
    limits: Defaults = Defaults(),
    observers: Sequence[CallObserver] | CallBatch = (),
    tracer: Tracer | None = None,
    subscriber: ResourceSubscriber | None = None,
) -> Next:
    spans: dict[Stage, str] = {}
    """Stages that get a span of their own in a sampled request, and its name."""

    def span(name: str, stage: Stage) -> Stage:
        spans[stage] = name
        return stage

    stages: list[Stage] = [
        # Before anything reveals what exists. The one decision on who calls: the edge only parsed
        # the credential (and may have asked the same authenticator early, for HTTP's 401).
        authenticate_stage(authenticator),
        resolve_stage(snapshot),  # the virtual server, from the in-memory snapshot (no DB)
        span("bastion.policy", authorize),  # needs the server (its policy) and the principal; before route answers lists
        # After authorize (search results respect the policy), before rate limits and route: a
        # call_tool becomes a call of the real tool, limited, checked and routed as one.
        discover,
    ]
    if limiter is not None:
        # After authentication (which held the token to its grants for this server) and resolve
        # (the server's own limits): a refused caller never learns more. Before route, so a
        # refused call costs no upstream work.
        stages.append(span("bastion.rate_limit", ratelimit_stage(limiter, limits)))
    stages.append(route_stage(page_size))  # needs the view; answers list requests itself, in pages
    # After route (the tool and its schema, once the policy allowed it), before any upstream work.
    stages.append(validate)
    # After route (the resource, checked against the policy); subscriptions and listen streams end
    # here and never reach the bridge or dispatch.
    stages.append(subscribe_stage(subscriber))
    if bridge is not None:
        # After route (it needs the upstream), before dispatch (it may run dispatch in the
        # background, or resume a held call instead of dispatching at all).
        stages.append(bridge.stage())
    stages.append(dispatch_stage(pool, timeout, server_info))  # last: the only stage doing upstream I/O
    # First: sees every outcome, including auth failures. With tracing, a sampled request runs the
    # stages with their spans and an unsampled one (most, when sampling) runs them bare: a wrapper
    # that only finds there is nothing to record still costs its call on every request.
    if tracer is None:
        return chain([observe_stage(observers), *stages])
    spanned = [traced(spans[s], s) if s in spans else s for s in stages]
    return chain([observe_stage(observers, tracer, unsampled=chain(stages)), *spanned])
