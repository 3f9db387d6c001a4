"""Discovery: list everything an upstream offers (every page) and name it for the catalog."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bastion.core.errors import UpstreamProtocolError, UpstreamRpcError, UpstreamUnavailable
from bastion.core.models import CatalogItem, Discovery, ItemKind
from bastion.core.naming import gateway_names
from bastion.core.values import unfit_number_at

if TYPE_CHECKING:
    from bastion.upstream.connection import UpstreamConnection



@dataclass(frozen=True, slots=True)
class DiscoveryLimits:
    """What one upstream may list: entries per list kind, and pages per list (settings
    BASTION_UPSTREAM_MAX_ITEMS and BASTION_UPSTREAM_MAX_PAGES). Past either, discovery fails."""

    max_items: int = 5000
    max_pages: int = 100


# (kind, list method, result field, key field, capability)
_LISTINGS: tuple[tuple[ItemKind, str, str, str, str], ...] = (
    ("tool", "tools/list", "tools", "name", "tools"),
    ("prompt", "prompts/list", "prompts", "name", "prompts"),
    ("resource", "resources/list", "resources", "uri", "resources"),
    ("resource_template", "resources/templates/list", "resourceTemplates", "uriTemplate", "resources"),
)


async def _list_all(
    conn: UpstreamConnection, method: str, field: str, timeout: float, limits: DiscoveryLimits
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(limits.max_pages):
        params = {"cursor": cursor} if cursor else None
        page = await conn.request(method, params, timeout=timeout)
        entries = page.get(field)
        if not isinstance(entries, list):
            raise UpstreamProtocolError(f"upstream {conn.spec.name!r} answered {method} without a {field} list")
        if len(out) + len(entries) > limits.max_items:
            what = "resource templates" if field == "resourceTemplates" else field
            raise UpstreamProtocolError(
                f"upstream {conn.spec.name!r} lists more than {limits.max_items} {what}, the most Bastion accepts "
                "from one upstream (BASTION_UPSTREAM_MAX_ITEMS)"
            )
        out.extend(e for e in entries if isinstance(e, dict))
        cursor = page.get("nextCursor")
        if not cursor:
            return out
    raise UpstreamProtocolError(
        f"upstream {conn.spec.name!r} paginated {method} past {limits.max_pages} pages (BASTION_UPSTREAM_MAX_PAGES)"
    )


def name_items(upstream: str, kind: ItemKind, key_field: str, entries: list[dict[str, Any]]) -> list[CatalogItem]:
    """Catalog items for one kind, first occurrence of a key winning, with collision-free names."""
    unique: dict[str, dict[str, Any]] = {}
    for entry in entries:
        key = entry.get(key_field)
        if isinstance(key, str) and key and key not in unique:
            unique[key] = entry
    pairs = [(str(e.get("name") or k), k) for k, e in unique.items()]
    names = gateway_names(upstream, pairs)
    return [
        CatalogItem(upstream=upstream, kind=kind, key=key, gateway_name=name, definition=entry)
        for (key, entry), name in zip(unique.items(), names, strict=True)
    ]


def storable(discovery: Discovery, upstream: str) -> Discovery:
    """`discovery`, once no definition holds a number JSON text cannot spell: NaN or an infinity
    (Python's parser reads `NaN`, `Infinity` and a number past a float's range such as `1e400`). The
    catalog stores definitions as JSON (PostgreSQL refused the row: a 500) and passes them to
    clients, and neither can carry one. Else the upstream's answer is malformed, named as such."""
    for item in discovery.items:
        where = unfit_number_at(item.definition)
        if where is not None:
            raise UpstreamProtocolError(
                f"upstream {upstream!r} lists {item.kind} {item.key!r} with a number JSON cannot carry"
                f" (NaN or infinite) at {where or 'its top level'}"
            )
    return discovery


async def discover(conn: UpstreamConnection, *, timeout: float, limits: DiscoveryLimits = DiscoveryLimits()) -> Discovery:
    """Everything the upstream lists, for the kinds its capabilities advertise, within `limits`."""
    client = await conn.ready_client(timeout)
    caps = client.server_capabilities
    info = client.server_info
    items: list[CatalogItem] = []
    for kind, method, field, key_field, capability in _LISTINGS:
        if getattr(caps, capability, None) is None:
            continue
        try:
            entries = await _list_all(conn, method, field, timeout, limits)
        except UpstreamRpcError as exc:
            if kind == "resource_template" and exc.rpc_code == -32601:
                continue  # older servers advertise resources without templates
            raise
        items.extend(name_items(conn.spec.name, kind, key_field, entries))
    if conn.client is None:
        raise UpstreamUnavailable(f"upstream {conn.spec.name!r} went away during discovery")
    return Discovery(
        items=tuple(items),
        server_name=info.name if info else None,
        server_version=info.version if info else None,
        protocol_version=client.protocol_version,
    )
