"""The in-memory snapshot the request path reads: catalog and composed virtual servers.

Built from the config store on start and after every change; swapped atomically, never mutated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bastion.core.compose import ServerView, compose, select_items
from bastion.core.models import CatalogItem, Upstream, VirtualServerSpec
from bastion.core.ownership import Clash
from bastion.core.pinning import Approval, PinBook, PinMemo, apply_pins


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
    inputs: Mapping[str, tuple[Any, ...]] = field(default_factory=dict, compare=False, repr=False)
    """Per virtual server, what its view was composed from (to reuse the view when none of it changed)."""
    pin_memo: PinMemo = field(default_factory=PinMemo, compare=False, repr=False)
    """The definition hashes and waiting approvals this build made, for the next build to reuse."""


def _inputs(spec: VirtualServerSpec, items: tuple[CatalogItem, ...], upstreams: Mapping[str, Upstream]) -> tuple[Any, ...]:
    """Everything `compose` reads for `spec`: the spec, its items (as pinned), and which of the upstreams
    they name exist and are enabled (health and other state do not change a view)."""
    chosen, _ = select_items(spec, items, upstreams)
    named = sorted({i.upstream for i in chosen} | set(spec.upstreams))
    return (spec, tuple(chosen), tuple((n, upstreams[n].spec.enabled if n in upstreams else None) for n in named))


def build_snapshot(
    upstreams: Iterable[Upstream],
    items: Iterable[CatalogItem],
    specs: Iterable[VirtualServerSpec],
    version: int = 0,
    pins: PinBook | None = None,
    previous: Snapshot | None = None,
) -> Snapshot:
    """Compose every virtual server leniently: a refresh must not take a whole server down.
    Items whose definitions are not approved are marked (and quarantined) per their upstream's pin.
    A server whose inputs are those of its view in `previous` keeps that view (and what it cached);
    a `discovery: "search"` server's view comes with its search index built."""
    by_name = {u.spec.name: u for u in upstreams}
    pins = pins or PinBook()
    memo = PinMemo(previous.pin_memo if previous is not None else None)
    marked, approvals = apply_pins(items, {n: u.spec.pin for n, u in by_name.items()}, pins.records, memo)
    all_items = tuple(sorted(marked, key=lambda i: (i.upstream, i.kind, i.gateway_name)))
    servers: dict[str, ServerView] = {}
    problems: dict[str, tuple[str, ...]] = {}
    clashes: dict[str, list[tuple[str, Clash]]] = {}
    inputs: dict[str, tuple[Any, ...]] = {}
    for spec in specs:
        inputs[spec.name] = _inputs(spec, all_items, by_name)
        if previous is not None and spec.name in previous.servers and previous.inputs.get(spec.name) == inputs[spec.name]:
            view, found = previous.servers[spec.name], list(previous.problems.get(spec.name, ()))
        else:
            view, found = compose(spec, all_items, by_name, strict=False)
            if spec.discovery == "search":
                # Built with the snapshot (Gateway.rebuild runs this in a worker thread), not by the
                # first search on the event loop: 10,000 tools take about a second.
                view.tool_index()
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
        inputs=inputs,
        pin_memo=memo,
    )
