"""Resource subscriptions through a virtual server, and the fan-out of `resources/updated`.

A 2025-11-25 session subscribes with `resources/subscribe`; a 2026-07-28 client names resources in
its `subscriptions/listen` filter. Both requests pass the pipeline (authentication, policy, rate
limits; its subscribe stage subscribes Bastion upstream, once per (upstream, URI) however many
clients want it). Each update from the upstream reaches the clients of every virtual server that
serves that resource from that upstream, and of those only the ones whose principal the server's
policy still lets read it, checked at each delivery.

A session's subscriptions last as long as the session: however it ends (DELETE, idle expiry, a
revoked credential, an HTTP+SSE client gone, ended by another replica) `release_watches` forgets them
and gives back Bastion's upstream interest, so the upstream is told `resources/unsubscribe` once no
other session (nor listen stream) on this replica watches the resource. A listen stream holds its
own interest only while it is open (pipeline/subscribe.py).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import anyio
from mcp.server import ServerRequestContext
from mcp.server.connection import Connection
from mcp.server.subscriptions import ListenHandler
from mcp.shared.subscriptions import ResourceUpdated
from mcp_types import SubscriptionsListenRequestParams
from starlette.requests import Request

from bastion.core.compose import ServerView
from bastion.core.errors import BastionError, ServiceUnavailable
from bastion.core.policy import Caller
from bastion.core.ports import ResourceSubscriber
from bastion.core.uri import normalize_uri
from bastion.pipeline.route import resource_for
from bastion.web.mcp_front import CallerBus, Front, Watch
from bastion.web.scope import credential_of

log = logging.getLogger("bastion.mcp")

ViewOf = Callable[[], ServerView | None]
MAX_LISTEN_STREAMS = 1024
"""Open `subscriptions/listen` streams per virtual server on one replica (the SDK's default cap)."""


def may_watch(view: ServerView | None, caller: Caller, uri: str) -> bool:
    """Whether `caller` may hear of `uri` on `view` now (the policy may have changed since it asked)."""
    if view is None:
        return False
    restriction = view.restricted(caller)
    return restriction is None or restriction.allows("resource", uri)


class SessionWatcher:
    """A 2025-11-25 session's side of its subscriptions (the pipeline's `Watcher` port)."""

    def __init__(self, front: Front, connection: Connection) -> None:
        self._front = front
        self._connection = connection

    def watch(self, upstream: str, uri: str, caller: Caller) -> bool:
        watchers = self._front.resource_subs.setdefault(uri, weakref.WeakKeyDictionary())
        if self._connection in watchers:
            return False
        watchers[self._connection] = Watch(upstream, caller)
        return True

    def unwatch(self, uri: str) -> str | None:
        watch = _forget(self._front, uri, self._connection)
        return watch.upstream if watch is not None else None


def _forget(front: Front, uri: str, connection: Connection) -> Watch | None:
    """Drop `connection`'s watch of `uri` (and the URI's entry once nobody watches it)."""
    watchers = front.resource_subs.get(uri)
    if watchers is None:
        return None
    watch = watchers.pop(connection, None)
    if not watchers:
        del front.resource_subs[uri]
    return watch


async def release_watches(front: Front, connection: Connection, subscriber: ResourceSubscriber | None) -> None:
    """A 2025-11-25 session ended: forget what it watched and give back Bastion's interest upstream
    (the upstream unsubscribes once nobody else here watches the resource). Runs to the end even when
    cancelled: a half-released session would keep its upstream subscriptions for good."""
    released = [(watch.upstream, uri) for uri in list(front.resource_subs) if (watch := _forget(front, uri, connection))]
    if subscriber is None:
        return
    with anyio.CancelScope(shield=True):
        for upstream, uri in released:
            try:
                await subscriber.unsubscribe(upstream, uri)
            except Exception:
                log.warning("could not release a subscription of an ended session", exc_info=True)


def stream_listener(front: Front, view_of: ViewOf, ctx: ServerRequestContext[Any]) -> Any:
    """The pipeline's `listen` hook for one `subscriptions/listen` request: serves its stream with
    the params the pipeline allowed, filtered for its caller until it ends."""

    async def listen(params: dict[str, Any], caller: Caller) -> dict[str, Any]:
        if len(front.listeners) >= MAX_LISTEN_STREAMS:
            raise ServiceUnavailable(f"virtual server {front.name!r} has too many open listen streams")
        handler = ListenHandler(CallerBus(front.bus, caller, lambda uri: may_watch(view_of(), caller, uri)))
        front.listeners.add(handler)
        request = ctx.request
        front.guard(handler, credential_of(request.scope) if isinstance(request, Request) else None, _end_listening)
        result = await handler(ctx, SubscriptionsListenRequestParams.model_validate(params, by_name=False))
        return result.model_dump(by_alias=True, exclude_none=True, mode="json")

    return listen


async def _end_listening(handler: ListenHandler) -> None:
    handler.close()


async def fan_out(fronts: Mapping[str, Front], views: Mapping[str, ServerView], upstream: str, uri: str) -> None:
    """Tell every client subscribed to `uri` on a virtual server that serves it from `upstream`, if
    the server's policy lets it read `uri`."""
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
        await front.bus.publish(ResourceUpdated(uri=uri))  # each listen stream filters for its caller
        watchers = front.resource_subs.get(uri)
        if watchers is None:
            continue
        for connection, watch in list(watchers.items()):
            if not may_watch(view, watch.caller, uri):
                continue
            try:
                await connection.send_resource_updated(uri)
            except Exception:  # noqa: BLE001 - a gone client must not stop the others
                watchers.pop(connection, None)
