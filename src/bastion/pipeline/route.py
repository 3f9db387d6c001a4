"""Route: map a downstream request to (catalog item, upstream params), or answer lists locally.

List requests never reach an upstream: they are served from the composed view.
"""

from __future__ import annotations

from typing import Any

from bastion.core.compose import Restriction, ServerView
from bastion.core.errors import BadRequest, Forbidden, NotFound, Quarantined, UnknownItem, UnknownTool
from bastion.core.models import CatalogItem, ItemKind
from bastion.core.transforms import map_call
from bastion.core.uri import normalize_uri, uri_readings
from bastion.pipeline.base import Next, Result, Stage
from bastion.pipeline.context import CallContext

_LISTS: dict[str, tuple[ItemKind, str]] = {
    "tools/list": ("tool", "tools"),
    "prompts/list": ("prompt", "prompts"),
    "resources/list": ("resource", "resources"),
    "resources/templates/list": ("resource_template", "resourceTemplates"),
}
LIST_METHODS = frozenset(_LISTS)
"""Requests answered from the composed view: no upstream work, nothing to cancel."""
SERVED_METHODS = frozenset({*_LISTS, "tools/call", "prompts/get", "resources/read", "completion/complete"})
"""The request methods a virtual server answers with one result (the fast path serves these)."""
SUBSCRIPTION_METHODS = frozenset({"resources/subscribe", "resources/unsubscribe", "subscriptions/listen"})
"""Requests that subscribe Bastion to upstream resources (or stop); they pass the same pipeline."""
_RESERVED_META = "io.modelcontextprotocol/"


# The client's capabilities travel on: an upstream decides what to ask (sampling, elicitation) by them.
_KEPT_RESERVED = frozenset({f"{_RESERVED_META}clientCapabilities"})
# Multi-round-trip fields (2026-07-28): a retry carries the answers and the upstream's own state back.
_ROUND_TRIP = ("inputResponses", "requestState")


def forwardable_meta(params: dict[str, Any]) -> dict[str, Any] | None:
    """The client's `_meta` minus what is per-hop (progress token, protocol version, log opt-in)."""
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        return None
    kept = {
        k: v
        for k, v in meta.items()
        if k != "progressToken" and (not k.startswith(_RESERVED_META) or k in _KEPT_RESERVED)
    }
    return kept or None


def _with_meta(upstream_params: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    meta = forwardable_meta(params)
    if meta is not None:
        upstream_params["_meta"] = meta
    return upstream_params


def _required_str(params: dict[str, Any], key: str, method: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{method} needs a string {key!r}")
    return value


def _check(restriction: Restriction | None, view: ServerView, kind: ItemKind, name: str) -> None:
    if restriction is not None and not restriction.allows(kind, name):
        label = "resource" if kind in ("resource", "resource_template") else kind
        raise Forbidden(f"{label} {name!r} is forbidden for you by the policy of virtual server {view.name!r}")


def _lookup(view: ServerView, kind: ItemKind, name: str, restriction: Restriction | None) -> CatalogItem:
    bucket = view.tools if kind == "tool" else view.prompts
    item = bucket.get(name)
    if item is not None:
        _check(restriction, view, kind, name)
        return item
    label = "tool" if kind == "tool" else "prompt"
    error = UnknownTool if kind == "tool" else UnknownItem
    if (kind, name) in view.disabled:
        raise error(f"{label} {name!r} is disabled on virtual server {view.name!r}", name=name)
    if kind == "tool" and name in view.held and (restriction is None or restriction.allows(kind, name)):
        raise Forbidden(f"tool {name!r} is held on virtual server {view.name!r}: {view.held[name]}", name=name)
    _refuse_quarantined(view, kind, name, restriction)
    raise error(f"unknown {label} {name!r} on virtual server {view.name!r}", name=name)


def _refuse_quarantined(view: ServerView, kind: ItemKind, name: str, restriction: Restriction | None) -> None:
    """Quarantined items are named as such, but only to a caller the policy would let use them."""
    held = view.quarantined.get((kind, name))
    if held is None or (restriction is not None and not restriction.allows(kind, name)):
        return
    label = "resource" if kind in ("resource", "resource_template") else kind
    why = "is new" if held.pin_status == "new" else "was rejected" if held.pin_status == "rejected" else "changed"
    raise Quarantined(
        f"{label} {name!r} is quarantined on virtual server {view.name!r}: its definition {why} since an admin "
        "approved it, and it is held until an admin approves it (GET /api/v1/approvals)",
        name=name,
    )


def resource_for(view: ServerView, uri: str, restriction: Restriction | None = None) -> CatalogItem:
    """The item serving `uri` (any spelling: it is compared in normal form), checked against policy."""
    uri = normalize_uri(uri)
    item = view.resources.get(uri)
    if item is None:
        template = view.template_matcher.match(uri)
        item = view.templates.get(template) if template is not None else None
    if item is None:
        _refuse_quarantined(view, "resource", uri, restriction)
        raise UnknownItem(f"unknown resource {uri!r} on virtual server {view.name!r}", uri=uri)
    for reading in uri_readings(uri):
        _check(restriction, view, "resource", reading)
    return item


def _route_completion(
    view: ServerView, params: dict[str, Any], restriction: Restriction | None
) -> tuple[CatalogItem, dict[str, Any]]:
    ref = params.get("ref")
    if not isinstance(ref, dict):
        raise BadRequest("completion/complete needs a 'ref' object")
    if ref.get("type") == "ref/prompt":
        item = _lookup(view, "prompt", _required_str(ref, "name", "completion/complete ref"), restriction)
        new_ref = {**ref, "name": item.key}
    elif ref.get("type") == "ref/resource":
        uri = normalize_uri(_required_str(ref, "uri", "completion/complete ref"))
        item = resource_for(view, uri, restriction)
        new_ref = {**ref, "uri": item.key}
    else:
        raise BadRequest("completion/complete ref.type must be 'ref/prompt' or 'ref/resource'")
    return item, {**{k: v for k, v in params.items() if k != "_meta"}, "ref": new_ref}


def route_stage(page_size: int) -> Stage:
    """The route stage; list requests are answered in pages of `page_size`."""

    async def route(ctx: CallContext, call_next: Next) -> Result:
        view = ctx.view
        assert view is not None, "resolve runs before route"
        listing = _LISTS.get(ctx.method)
        if listing is not None:
            kind, field = listing
            pages = ctx.restriction.pages if ctx.restriction is not None else view.pages()
            items, next_cursor = pages.page(kind, ctx.params.get("cursor"), page_size)
            return {field: items, "nextCursor": next_cursor} if next_cursor else {field: items}
        return await _route_call(ctx, view, call_next)

    return route


async def _route_call(ctx: CallContext, view: ServerView, call_next: Next) -> Result:
    method, params, restriction = ctx.method, ctx.params, ctx.restriction
    if method == "tools/call":
        name = _required_str(params, "name", method)
        item = _lookup(view, "tool", name, restriction)
        upstream_params: dict[str, Any] = {"name": item.key}
        transform = view.transforms.get(name)
        if transform is not None:
            upstream_params["arguments"] = map_call(transform, params.get("arguments"))
        elif "arguments" in params:
            upstream_params["arguments"] = params["arguments"]
        for key in (*_ROUND_TRIP, "task"):
            if key in params:
                upstream_params[key] = params[key]
    elif method == "prompts/get":
        item = _lookup(view, "prompt", _required_str(params, "name", method), restriction)
        upstream_params = {"name": item.key}
        for key in ("arguments", *_ROUND_TRIP):
            if key in params:
                upstream_params[key] = params[key]
    elif method == "resources/read":
        # The upstream reads the normal form the policy decided on (a listed resource: its own spelling).
        uri = normalize_uri(_required_str(params, "uri", method))
        item = resource_for(view, uri, restriction)
        forwarded = item.key if item.kind == "resource" else uri
        upstream_params = {"uri": forwarded, **{k: params[k] for k in _ROUND_TRIP if k in params}}
    elif method == "completion/complete":
        item, upstream_params = _route_completion(view, params, restriction)
    elif method == "resources/subscribe":
        uri = _required_str(params, "uri", method)
        item = resource_for(view, uri, restriction)
        upstream_params = {"uri": uri}
    elif method == "resources/unsubscribe":
        # Stopping is always allowed, even once the resource is gone or denied: it releases what
        # the session holds (the subscribe stage knows from where).
        ctx.upstream_params = {"uri": _required_str(params, "uri", method)}
        return await call_next(ctx)
    elif method == "subscriptions/listen":
        ctx.upstream_params = listen_params(view, params, restriction)
        return await call_next(ctx)
    else:
        raise NotFound(f"method {method!r} is not served by virtual servers")
    ctx.item = item
    ctx.upstream_params = _with_meta(upstream_params, params)
    return await call_next(ctx)


def listen_params(view: ServerView, params: dict[str, Any], restriction: Restriction | None) -> dict[str, Any]:
    """A `subscriptions/listen` request's params with its resource filter cut to the resources this
    server serves and the caller may read: the stream then honours (and acknowledges) only those."""
    notifications = params.get("notifications")
    if not isinstance(notifications, dict):
        raise BadRequest("subscriptions/listen needs a 'notifications' object")
    wanted = notifications.get("resourceSubscriptions") or []
    if not isinstance(wanted, list) or not all(isinstance(uri, str) for uri in wanted):
        raise BadRequest("subscriptions/listen resourceSubscriptions must be a list of URIs")
    kept: list[str] = []
    for uri in wanted:
        try:
            resource_for(view, uri, restriction)
        except (UnknownItem, Forbidden):
            continue  # not honoured: the acknowledgement tells the client which ones are
        if uri not in kept:
            kept.append(uri)
    filtered = {k: v for k, v in notifications.items() if k != "resourceSubscriptions"}
    if kept:
        filtered["resourceSubscriptions"] = kept
    return {**params, "notifications": filtered}
