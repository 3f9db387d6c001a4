"""Tool pinning (rug-pull protection): approved definitions, what changed since, and what to hold back.

An admin approves the definition of each tool, prompt, resource and template (the fields a client
and a model act on, its icons, `_meta` and a tool's `execution` among them). A later discovery that
brings a different definition, a new item, or drops one produces an approval to decide. With pin
`block` a new, changed or rejected item is quarantined (neither listed nor callable); with `warn` it
stays usable but flagged (a rejected one is still held); with `off` nothing is pinned. Pure: no I/O,
no clock.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import marshal
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

from bastion.core.models import CatalogItem
from bastion.core.values import Frozen, ItemKind, PinMode

Change = Literal["new", "changed", "removed"]
PinStatus = Literal["new", "changed", "rejected"]

# The fields of a definition that are pinned, per kind: what a client shows and a model reads.
PINNED_FIELDS: dict[ItemKind, tuple[str, ...]] = {
    "tool": ("name", "title", "description", "inputSchema", "outputSchema", "annotations"),
    "prompt": ("name", "title", "description", "arguments"),
    "resource": ("uri", "name", "title", "description", "mimeType", "annotations"),
    "resource_template": ("uriTemplate", "name", "title", "description", "mimeType", "annotations"),
}
# Pinned too, but only when present and not empty (None, {} and [] are as absent): icons a client shows
# (and fetches), `_meta` (an MCP App's `ui.resourceUri`, `openai/outputTemplate`: what a client renders
# and loads) and how a tool runs (`execution.taskSupport`). Leaving them out of the view when absent
# keeps the hash of every definition without them, and so every approval made before they were pinned.
PINNED_IF_GIVEN: dict[ItemKind, tuple[str, ...]] = {
    "tool": ("icons", "execution", "_meta"),
    "prompt": ("icons", "_meta"),
    "resource": ("icons", "_meta"),
    "resource_template": ("icons", "_meta"),
}


PIN_STRENGTH: dict[PinMode, int] = {"off": 0, "warn": 1, "block": 2}
DEFAULT_PIN: PinMode = "block"
"""What a new upstream gets, and all a non-admin may give one: only an admin approves, so only an admin
may weaken what waits for an approval."""


def lowers_pin(old: PinMode, new: PinMode) -> bool:
    """Whether going from `old` to `new` holds back less (block -> warn/off, warn -> off)."""
    return PIN_STRENGTH[new] < PIN_STRENGTH[old]


class PinRecord(Frozen):
    """The decisions on one item: the approved definition (pinned fields only) and a rejected hash."""

    upstream: str
    kind: ItemKind
    key: str
    approved: dict[str, Any] | None = None
    approved_hash: str | None = None
    rejected_hash: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None


class Approval(Frozen):
    """A change waiting for an admin: what it was (if approved before) and what it is now (if still there)."""

    id: str
    upstream: str
    kind: ItemKind
    key: str
    change: Change
    mode: PinMode
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    old_hash: str | None
    new_hash: str | None

    @property
    def diff(self) -> str:
        return definition_diff(self.old, self.new, f"{self.kind} {self.key}")


class PinBook(Frozen):
    """Every pin decision, and the upstreams whose next discovery is approved as it comes (an admin
    registered them before anything could be discovered, e.g. per-user OAuth upstreams)."""

    records: tuple[PinRecord, ...] = ()
    trusting: frozenset[str] = frozenset()


def pinned_view(kind: ItemKind, definition: Mapping[str, Any]) -> dict[str, Any]:
    """The pinned fields of a definition (absent fields stay absent, as do empty optional ones)."""
    view = {f: definition[f] for f in PINNED_FIELDS[kind] if f in definition}
    for field in PINNED_IF_GIVEN[kind]:
        value = definition.get(field)
        if value is not None and value != {} and value != []:
            view[field] = value
    return view


def canonical(value: Any) -> str:
    """Canonical JSON: sorted keys, no insignificant whitespace, UTF-8 as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def definition_hash(kind: ItemKind, definition: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical pinned view of a definition."""
    return hashlib.sha256(canonical(pinned_view(kind, definition)).encode()).hexdigest()


def approval_id(upstream: str, kind: ItemKind, key: str, new_hash: str | None) -> str:
    """Stable id of one pending change; a further change to the same item gets a new id."""
    text = "\0".join((upstream, kind, key, new_hash or "removed"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def definition_diff(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, label: str) -> str:
    """A unified diff of two definitions as indented, key-sorted JSON (empty side: none)."""

    def lines(value: Mapping[str, Any] | None) -> list[str]:
        if value is None:
            return []
        return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False).splitlines(keepends=True)

    return "".join(
        difflib.unified_diff(lines(old), lines(new), fromfile=f"approved {label}", tofile=f"current {label}")
    )


class PinMemo:
    """The hashes and waiting approvals one build worked out, for the next to reuse: a rebuild of
    a catalog whose unapproved definitions did not change hashes none of them again. Pure; the
    caller carries it from build to build (the snapshot does)."""

    def __init__(self, previous: PinMemo | None = None) -> None:
        self.hashes: dict[bytes, str] = {}
        """Definition hashes by their pinned view's marshal form, as this build used them."""
        self.approvals: dict[tuple[str | None, ...], Approval] = {}
        """Waiting approvals, as this build listed them."""
        self._old_hashes = previous.hashes if previous is not None else {}
        self._old_approvals = previous.approvals if previous is not None else {}

    def hash(self, view: dict[str, Any]) -> str:
        """`definition_hash` of a pinned view. Keyed by the view's marshal form (C-speed, a quarter
        of the canonical JSON's cost): equal bytes are equal values of equal types (1, 1.0 and
        true apart), so equal canonical JSON; equal values that encode apart only cost a hash."""
        try:
            key = marshal.dumps(view, 2)  # version 2 writes no back-references: the bytes do not depend on object sharing
        except ValueError:  # a type marshal refuses (a subclass of str or dict): not memoised
            return hashlib.sha256(canonical(view).encode()).hexdigest()
        found = self.hashes.get(key) or self._old_hashes.get(key)
        if found is None:
            found = hashlib.sha256(canonical(view).encode()).hexdigest()
        self.hashes[key] = found
        return found

    def approval(self, item: CatalogItem, change: Change, mode: PinMode, record: PinRecord | None, view: dict[str, Any], new_hash: str) -> Approval:
        """The waiting approval of `item`, the one the previous build made if nothing it holds changed
        (its old side is fixed by the approved hash, its new side by `new_hash`)."""
        old_hash = record.approved_hash if record is not None else None
        key = (item.upstream, item.kind, item.key, change, mode, old_hash, new_hash)
        found = self.approvals.get(key) or self._old_approvals.get(key)
        if found is None:
            found = Approval(
                id=approval_id(item.upstream, item.kind, item.key, new_hash),
                upstream=item.upstream, kind=item.kind, key=item.key, change=change, mode=mode,
                old=record.approved if record is not None else None, new=view, old_hash=old_hash, new_hash=new_hash,
            )
        self.approvals[key] = found
        return found

    def settle(self) -> None:
        """Forget what the previous build knew and this one did not use."""
        self._old_hashes, self._old_approvals = {}, {}


def item_status(item: CatalogItem, record: PinRecord | None, memo: PinMemo | None = None) -> PinStatus | None:
    """None when the item's definition is the approved one, else why it is not."""
    current = pinned_view(item.kind, item.definition)
    memo = memo or PinMemo()
    # Compared by the hash of its canonical JSON, not with `==`: Python holds 1, 1.0 and True
    # equal, a client and a model do not, so a changed type is a changed definition.
    if record is not None and record.approved is not None:
        approved_hash = record.approved_hash or memo.hash(record.approved)
        if approved_hash == memo.hash(current):
            return None
    if record is not None and record.rejected_hash is not None:
        if record.rejected_hash == memo.hash(current):
            return "rejected"
    return "changed" if record is not None and record.approved is not None else "new"


def is_held(status: PinStatus | None, mode: PinMode) -> bool:
    """Whether an item with this status is quarantined under `mode`."""
    if status is None or mode == "off":
        return False
    return mode == "block" or status == "rejected"


def apply_pins(
    items: Iterable[CatalogItem],
    modes: Mapping[str, PinMode],
    records: Iterable[PinRecord],
    memo: PinMemo | None = None,
) -> tuple[list[CatalogItem], list[Approval]]:
    """Mark each item's pin status (and quarantine) and list the approvals waiting.

    Items of upstreams with pin `off` (or unknown) pass unmarked. Rejected definitions are not
    listed as waiting: they stay held until the upstream changes them again. `memo` (made from the
    previous build's) spares hashing definitions that did not change and keeps what this build used.
    """
    memo = memo or PinMemo()
    by_key = {(r.upstream, r.kind, r.key): r for r in records}
    out: list[CatalogItem] = []
    pending: list[Approval] = []
    seen: set[tuple[str, str, str]] = set()
    for item in items:
        mode = modes.get(item.upstream, "off")
        ident = (item.upstream, item.kind, item.key)
        seen.add(ident)
        if mode == "off":
            out.append(item)
            continue
        record = by_key.get(ident)
        status = item_status(item, record, memo)
        if status is None:
            out.append(item)
            continue
        out.append(item.model_copy(update={"pin_status": status, "quarantined": is_held(status, mode)}))
        if status != "rejected":
            view = pinned_view(item.kind, item.definition)
            pending.append(memo.approval(item, status, mode, record, view, memo.hash(view)))
    for ident, record in by_key.items():
        mode = modes.get(record.upstream, "off")
        if ident in seen or mode == "off" or record.approved is None:
            continue
        pending.append(
            Approval(
                id=approval_id(record.upstream, record.kind, record.key, None),
                upstream=record.upstream, kind=record.kind, key=record.key, change="removed", mode=mode,
                old=record.approved, new=None, old_hash=record.approved_hash, new_hash=None,
            )
        )
    pending.sort(key=lambda a: (a.upstream, a.kind, a.key))
    memo.settle()
    return out, pending


def approve(item: CatalogItem, actor: str | None, at: datetime) -> PinRecord:
    """The record that pins `item`'s current definition."""
    return PinRecord(
        upstream=item.upstream, kind=item.kind, key=item.key,
        approved=pinned_view(item.kind, item.definition),
        approved_hash=definition_hash(item.kind, item.definition),
        decided_by=actor, decided_at=at,
    )


def reject(approval: Approval, record: PinRecord | None, actor: str | None, at: datetime) -> PinRecord:
    """The record that keeps the approved definition (if any) and refuses the current one."""
    return PinRecord(
        upstream=approval.upstream, kind=approval.kind, key=approval.key,
        approved=record.approved if record is not None else None,
        approved_hash=record.approved_hash if record is not None else None,
        rejected_hash=approval.new_hash, decided_by=actor, decided_at=at,
    )
