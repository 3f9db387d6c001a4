"""REST: /api/v1/tools, /prompts, /resources — the searchable catalog and per-item overrides."""

from __future__ import annotations

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.control.gateway import Gateway
from bastion.core.catalog_text import CatalogText
from bastion.core.errors import BadRequest, NotFound
from bastion.core.identity import can_see, is_admin
from bastion.core.models import CatalogItem, ItemKind
from bastion.core.snapshot import Snapshot
from bastion.pipeline.context import Principal
from bastion.web.rest.access import editable, principal_of, reach
from bastion.web.rest.common import item_json, read_json, require_object
from bastion.web.rest.listing import paged

_COLLECTIONS: dict[str, tuple[ItemKind, ...]] = {
    "tools": ("tool",),
    "prompts": ("prompt",),
    "resources": ("resource", "resource_template"),
}


def _apply_patch(item: CatalogItem, body: dict[str, object]) -> CatalogItem:
    unknown = set(body) - {"enabled", "name", "description"}
    if unknown:
        raise BadRequest(f"cannot change {', '.join(sorted(unknown))}; changeable: enabled, name, description")
    update: dict[str, object] = {}
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise BadRequest("'enabled' must be true or false")
        update["enabled"] = body["enabled"]
    for field, target in (("name", "name_override"), ("description", "description_override")):
        if field in body:
            value = body[field]
            if value is not None and not isinstance(value, str):
                raise BadRequest(f"{field!r} must be a string, or null to restore the upstream's")
            update[target] = value or None
    return item.model_copy(update=update)


def _flag(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise BadRequest("'enabled' must be true or false")


def catalog_routes(gateway: Gateway, max_body: int) -> list[Route]:
    def visible(principal: Principal, item: CatalogItem) -> bool:
        upstream = gateway.snapshot.upstreams.get(item.upstream)
        if upstream is None or not can_see(principal, upstream.spec):
            return False
        limit = reach(principal, gateway.snapshot.servers)
        return limit is None or limit.allows_item(item.upstream, item.kind, item.key)

    def find(request: Request, kind: ItemKind) -> CatalogItem:
        name = request.path_params["name"]
        item = gateway.find_item(kind, name)
        if not visible(principal_of(request), item):
            raise NotFound(f"{kind.replace('_', ' ')} {name!r} does not exist in the catalog")
        return item

    texts: list[tuple[Snapshot, CatalogText]] = []
    building = anyio.Lock()

    async def text_of(snapshot: Snapshot) -> CatalogText:
        """The search text of this snapshot's catalog (one kept: the snapshot is replaced on change).
        Built in a worker thread, once for concurrent searches: 10,000 items take ~17 ms of CPU that
        would otherwise stall every other request on the event loop."""
        async with building:
            if not texts or texts[0][0] is not snapshot:
                text = await anyio.to_thread.run_sync(CatalogText, snapshot.items)
                texts[:] = [(snapshot, text)]
            return texts[0][1]

    async def matching(principal: Principal, query: str, kinds: tuple[ItemKind, ...], upstream: str | None, enabled: bool | None) -> list[CatalogItem]:
        snapshot = gateway.snapshot
        # What the caller may see is decided once per request, per upstream; not once per item.
        seen = {n for n, u in snapshot.upstreams.items() if can_see(principal, u.spec)}
        limit = reach(principal, snapshot.servers)
        hits = (await text_of(snapshot)).hits(query) if query else None
        return [
            i
            for n, i in enumerate(snapshot.items)
            if i.kind in kinds
            and (not upstream or i.upstream == upstream)
            and (enabled is None or i.enabled == enabled)
            and (hits is None or hits[n])
            and i.upstream in seen
            and (limit is None or limit.allows_item(i.upstream, i.kind, i.key))
        ]

    routes = []
    for collection, kinds in _COLLECTIONS.items():

        async def list_items(request: Request, kinds: tuple[ItemKind, ...] = kinds) -> Response:
            principal = principal_of(request)
            query = request.query_params.get("q", "").strip()
            upstream = request.query_params.get("upstream")
            enabled = _flag(request.query_params.get("enabled"))
            found = await matching(principal, query, kinds, upstream, enabled)
            page = paged(request, found)
            page["items"] = [item_json(i) for i in page["items"]]  # only the page's items are shown
            return JSONResponse(page)

        async def get(request: Request, kinds: tuple[ItemKind, ...] = kinds) -> Response:
            return JSONResponse(item_json(find(request, kinds[0])))

        async def patch(request: Request, kinds: tuple[ItemKind, ...] = kinds) -> Response:
            item = find(request, kinds[0])
            owner = gateway.snapshot.upstreams[item.upstream].spec
            principal = principal_of(request)
            editable(principal, owner, f"upstream {item.upstream!r}")
            body = require_object(await read_json(request, max_body))
            _apply_patch(item, body)  # a body it cannot take is refused before waiting for a turn
            updated = await gateway.change_item(
                item, lambda current: _apply_patch(current, body), may_drop_prefix=is_admin(principal)
            )
            return JSONResponse(item_json(updated))

        routes += [
            Route(f"/api/v1/{collection}", list_items, methods=["GET"]),
            Route(f"/api/v1/{collection}/{{name}}", get, methods=["GET"]),
            Route(f"/api/v1/{collection}/{{name}}", patch, methods=["PATCH"]),
        ]
    return routes
