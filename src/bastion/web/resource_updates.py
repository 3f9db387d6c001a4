"""Resource subscriptions through a virtual server, and the fan-out of `resources/updated`.

A 2025-11-25 session subscribes with `resources/subscribe`; a 2026-07-28 client names resources in
its `subscriptions/listen` filter. Either way Bastion subscribes once per (upstream, URI) however
many clients want it (the pool counts), and each update from the upstream reaches every client of
every virtual server that serves that resource from that upstream.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import Any

from mcp import MCPError
from mcp.server import ServerRequestContext
from mcp.server.connection import Connection
from mcp.shared.subscriptions import ResourceUpdated
from mcp_types import EmptyResult, SubscribeRequestParams, SubscriptionsListenRequestParams, UnsubscribeRequestParams
from starlette.requests import Request

from bastion.core.compose import Restriction, ServerView
from bastion.core.errors import BastionError
from bastion.core.ports import ResourceSubscriber
from bastion.core.uri import normalize_uri
from bastion.pipeline.authz import caller_of
from bastion.pipeline.context import Principal
from bastion.pipeline.route import resource_for
from bastion.web.errors import to_mcp_error
from bastion.web.mcp_front import Front

ViewOf = Callable[[], ServerView | None]


def _restriction(ctx: ServerRequestContext[Any], view: ServerView | None) -> Restriction | None:
    """The server's policy for this request's caller: a denied resource can't be watched either."""
    request = ctx.request
    principal = request.scope.get("bastion.principal") if isinstance(request, Request) else None
    if view is None or not isinstance(principal, Principal):
        return None
    return view.restricted(caller_of(principal))


def _upstream_of(view: ServerView | None, uri: str, restriction: Restriction | None) -> str:
    if view is None:
        raise MCPError(-32602, "this virtual server no longer exists")
    try:
        return resource_for(view, uri, restriction).upstream
    except BastionError as exc:
        raise to_mcp_error(exc) from None


def subscription_handlers(front_of: Callable[[], Front], view_of: ViewOf, subscriber: ResourceSubscriber) -> dict[str, Any]:
    """The `resources/subscribe`, `resources/unsubscribe` and `subscriptions/listen` handlers."""

    # URIs are kept and forwarded in normal form: the one the policy decided on (core/uri.py).
    async def subscribe(ctx: ServerRequestContext[Any], params: SubscribeRequestParams) -> EmptyResult:
        uri = normalize_uri(str(params.uri))
        view = view_of()
        upstream = _upstream_of(view, uri, _restriction(ctx, view))
        watchers = front_of().resource_subs.setdefault(uri, weakref.WeakSet())
        connection: Connection = ctx.session._connection  # noqa: SLF001 - the SDK exposes no public handle
        if connection not in watchers:
            watchers.add(connection)
            await subscriber.subscribe(upstream, uri)
        return EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext[Any], params: UnsubscribeRequestParams) -> EmptyResult:
        uri = normalize_uri(str(params.uri))
        watchers = front_of().resource_subs.get(uri)
        connection: Connection = ctx.session._connection  # noqa: SLF001 - the SDK exposes no public handle
        if watchers is not None and connection in watchers:
            watchers.discard(connection)
            view = view_of()
            if view is not None:
                try:
                    await subscriber.unsubscribe(resource_for(view, uri).upstream, uri)
                except BastionError:
                    pass  # the resource left the server since: nothing upstream to keep
        return EmptyResult()

    async def listen(ctx: ServerRequestContext[Any], params: SubscriptionsListenRequestParams) -> Any:
        wanted = [normalize_uri(str(u)) for u in params.notifications.resource_subscriptions or ()]
        held: list[tuple[str, str]] = []
        view = view_of()
        restriction = _restriction(ctx, view)
        for uri in wanted:
            try:
                held.append((_upstream_of(view, uri, restriction), uri))
            except MCPError:
                continue  # not served here: the listen handler acknowledges only what it can honour
        for upstream, uri in held:
            await subscriber.subscribe(upstream, uri)
        try:
            return await front_of().listen(ctx, params)
        finally:
            for upstream, uri in held:
                await subscriber.unsubscribe(upstream, uri)

    return {"resources/subscribe": subscribe, "resources/unsubscribe": unsubscribe, "subscriptions/listen": listen}


async def fan_out(fronts: Mapping[str, Front], views: Mapping[str, ServerView], upstream: str, uri: str) -> None:
    """Tell every client subscribed to `uri` on a virtual server that serves it from `upstream`."""
    uri = normalize_uri(uri)
    for name, front in list(fronts.items()):
        view = views.get(name)
        if view is None:
            continue
        try:
            if resource_for(view, uri).upstream != upstream:
                continue
        except BastionError:
            continue
        await front.bus.publish(ResourceUpdated(uri=uri))
        for connection in list(front.resource_subs.get(uri, ())):
            try:
                await connection.send_resource_updated(uri)
            except Exception:  # noqa: BLE001 - a gone client must not stop the others
                front.resource_subs[uri].discard(connection)
