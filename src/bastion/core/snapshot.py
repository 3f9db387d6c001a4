"""The in-memory snapshot the request path reads: catalog and composed virtual servers.

Built from the config store on start and after every change; swapped atomically, never mutated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bastion.core.compose import ServerView, compose
from bastion.core.models import CatalogItem, Upstream, VirtualServerSpec
from bastion.core.pinning import Approval, PinBook, apply_pins


@dataclass(frozen=True)
class Snapshot:
    upstreams: Mapping[str, Upstream] = field(default_factory=dict)
    items: tuple[CatalogItem, ...] = ()
    servers: Mapping[str, ServerView] = field(default_factory=dict)
    problems: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    version: int = 0
    approvals: tuple[Approval, ...] = ()
    """Pin changes waiting for an admin (core/pinning.py)."""
    pins: PinBook = field(default_factory=PinBook)


def build_snapshot(
    upstreams: Iterable[Upstream],
    items: Iterable[CatalogItem],
    specs: Iterable[VirtualServerSpec],
    version: int = 0,
    pins: PinBook | None = None,
) -> Snapshot:
    """Compose every virtual server leniently: a refresh must not take a whole server down.
    Items whose definitions are not approved are marked (and quarantined) per their upstream's pin."""
    by_name = {u.spec.name: u for u in upstreams}
    pins = pins or PinBook()
    marked, approvals = apply_pins(items, {n: u.spec.pin for n, u in by_name.items()}, pins.records)
    all_items = tuple(sorted(marked, key=lambda i: (i.upstream, i.kind, i.gateway_name)))
    servers: dict[str, ServerView] = {}
    problems: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        view, found = compose(spec, all_items, by_name, strict=False)
        servers[spec.name] = view
        if found:
            problems[spec.name] = tuple(found)
    return Snapshot(
        upstreams=by_name, items=all_items, servers=servers, problems=problems, version=version,
        approvals=tuple(approvals), pins=pins,
    )
