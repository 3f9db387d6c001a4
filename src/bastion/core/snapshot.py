"""The in-memory snapshot the request path reads: catalog and composed virtual servers.

Built from the config store on start and after every change; swapped atomically, never mutated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bastion.core.compose import ServerView, compose
from bastion.core.models import CatalogItem, Upstream, VirtualServerSpec
from bastion.core.ownership import Clash
from bastion.core.pinning import Approval, PinBook, apply_pins


@dataclass(frozen=True)
class Snapshot:
    upstreams: Mapping[str, Upstream] = field(default_factory=dict)
    items: tuple[CatalogItem, ...] = ()
    servers: Mapping[str, ServerView] = field(default_factory=dict)
    problems: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    version: int = 0
    clashes: Mapping[str, tuple[tuple[str, Clash], ...]] = field(default_factory=dict)
    """Per upstream: (virtual server, clash) for each of its items held out there."""
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
    clashes: dict[str, list[tuple[str, Clash]]] = {}
    for spec in specs:
        view, found = compose(spec, all_items, by_name, strict=False)
        servers[spec.name] = view
        if found:
            problems[spec.name] = tuple(found)
        for clash in view.clashes:
            clashes.setdefault(clash.held.upstream, []).append((spec.name, clash))
    return Snapshot(
        upstreams=by_name,
        items=all_items,
        servers=servers,
        problems=problems,
        version=version,
        clashes={name: tuple(found) for name, found in clashes.items()},
        approvals=tuple(approvals),
        pins=pins,
    )
