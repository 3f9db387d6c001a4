"""Subscribe: the terminal stage for resource subscriptions (`resources/subscribe`,
`resources/unsubscribe`, 2026-07-28 `subscriptions/listen`).

They pass authentication, policy and rate limits like any call; here Bastion subscribes upstream
(counted: the first interest subscribes, the last releases) and the caller's side remembers who
watches what, so an update is later delivered only to callers the policy still allows.
"""

from __future__ import annotations

import anyio

from bastion.core.errors import BadRequest, NotFound
from bastion.core.ports import ResourceSubscriber
from bastion.pipeline.authz import caller_of
from bastion.pipeline.base import Next, Result, Stage
from bastion.pipeline.context import CallContext
from bastion.pipeline.route import SUBSCRIPTION_METHODS, resource_for


def subscribe_stage(subscriber: ResourceSubscriber | None) -> Stage:
    """Without a subscriber (`bastion wrap`) listen streams carry list changes only."""

    async def subscribe(ctx: CallContext, call_next: Next) -> Result:
        if ctx.method not in SUBSCRIPTION_METHODS:
            return await call_next(ctx)
        assert ctx.principal is not None and ctx.upstream_params is not None, "runs after authenticate and route"
        if ctx.method == "subscriptions/listen":
            return await _listen(ctx, subscriber)
        watcher = ctx.hooks.watcher if ctx.hooks is not None else None
        if subscriber is None:
            raise NotFound("resource subscriptions are not served here")
        if watcher is None:
            raise BadRequest(f"{ctx.method} needs a session to deliver updates on")
        uri = str(ctx.upstream_params["uri"])
        if ctx.method == "resources/subscribe":
            assert ctx.item is not None, "route found the resource"
            upstream = ctx.item.upstream
            if watcher.watch(upstream, uri, caller_of(ctx.principal)):
                try:
                    await subscriber.subscribe(upstream, uri)
                except BaseException:
                    watcher.unwatch(uri)
                    raise
        else:
            released = watcher.unwatch(uri)
            if released is not None:
                await subscriber.unsubscribe(released, uri)
        return {}

    return subscribe


async def _listen(ctx: CallContext, subscriber: ResourceSubscriber | None) -> Result:
    """Hold an upstream subscription for each resource the stream may watch while it is open."""
    listen = ctx.hooks.listen if ctx.hooks is not None else None
    if listen is None:
        raise BadRequest("subscriptions/listen needs a stream to answer on")
    assert ctx.view is not None and ctx.principal is not None and ctx.upstream_params is not None
    params = ctx.upstream_params
    if subscriber is None:
        notifications = {k: v for k, v in params["notifications"].items() if k != "resourceSubscriptions"}
        return await listen({**params, "notifications": notifications}, caller_of(ctx.principal))
    uris = params["notifications"].get("resourceSubscriptions") or []
    held: list[tuple[str, str]] = []
    try:
        for uri in uris:
            upstream = resource_for(ctx.view, uri).upstream
            await subscriber.subscribe(upstream, uri)
            held.append((upstream, uri))
        return await listen(params, caller_of(ctx.principal))
    finally:
        with anyio.CancelScope(shield=True):  # a client hanging up cancels the stream, not the release
            for upstream, uri in held:
                await subscriber.unsubscribe(upstream, uri)
