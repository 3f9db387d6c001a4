"""Who owns an exposed name or URI when several upstreams offer it: the first to list it.

A tool name (on a `prefix: never` server), a prompt name, a resource URI or a URI template that
one upstream already serves never moves to another upstream on its own: an upstream that starts
listing it later is held out and the clash reported, until an admin decides (disables, renames
or leaves out one of them). "First" is when Bastion first discovered the item (kept across
refreshes), never alphabetical order. Pure: tool pinning builds its approvals on `claim_order`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from bastion.core.models import CatalogItem, ItemKind

_NEVER = datetime.max.replace(tzinfo=UTC)


def claim_order(item: CatalogItem) -> tuple[datetime, str, str, str]:
    """Sort key: earlier claims first. An item not stored yet (no discovery time) claims last;
    equal times fall back to a fixed order so every replica decides the same."""
    return (item.discovered_at or _NEVER, item.upstream, item.kind, item.gateway_name)


@dataclass(frozen=True, slots=True)
class Clash:
    """`held` offers `name`, which `owner` (of another upstream) already serves: `held` is left out."""

    kind: ItemKind
    name: str
    held: CatalogItem
    owner: CatalogItem

    def message(self) -> str:
        """One text for a refusal (saving a server) and a report (a catalog that changed since), so
        the two can be compared."""
        what = f"{self.kind} name" if self.kind in ("tool", "prompt") else self.kind.replace("_", " ")
        fix = "use prefix 'always', or disable, rename or leave out one" if self.kind in ("tool", "prompt") else (
            "disable or leave out one"
        )
        return (
            f"{what} {self.name!r} is offered by both {self.owner.gateway_name!r} and {self.held.gateway_name!r} "
            f"(upstream {self.held.upstream!r}); {self.owner.gateway_name!r} had it first and keeps it, "
            f"{self.held.gateway_name!r} is held out: {fix}"
        )


def assign(kind: ItemKind, claims: Iterable[tuple[str, CatalogItem]]) -> tuple[dict[str, CatalogItem], list[Clash]]:
    """Give each name to its first claimant (by `claim_order`); every later claimant is a clash
    (within one upstream that only happens through a rename)."""
    owners: dict[str, CatalogItem] = {}
    clashes: list[Clash] = []
    for name, item in sorted(claims, key=lambda claim: claim_order(claim[1])):
        owner = owners.get(name)
        if owner is None:
            owners[name] = item
        else:
            clashes.append(Clash(kind, name, item, owner))
    return owners, clashes


def shadowed(resource: CatalogItem, uri: str, template_owner: CatalogItem | None) -> Clash | None:
    """A concrete resource URI that falls under an earlier-claimed template of another upstream
    (reads of that URI already went there) is held out too."""
    if template_owner is None or template_owner.upstream == resource.upstream:
        return None
    if claim_order(template_owner) > claim_order(resource):
        return None
    return Clash("resource", uri, resource, template_owner)
