"""Approving and rejecting pin changes (core/pinning.py): the admin's side of rug-pull protection."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from bastion.control.gateway import Gateway
from bastion.core.errors import Conflict, NotFound, StaleWrite
from bastion.core.pinning import Approval, PinRecord, approve, reject
from bastion.core.snapshot import Snapshot

audit = logging.getLogger("bastion.audit")


SUPERSEDED_KEPT = 10_000
"""Approvals whose item changed again that `find` still tells apart from unknown ones (the newest)."""
CHAIN_FOLLOWED = 100
"""How many changes after an approval `find` follows to the one that waits now."""


class Approvals:
    """Decisions on what a refresh or list_changed brought; each one is saved, then the snapshot rebuilt.

    An approval's id names the definition it is about (its hash): a decision is made on that definition
    only. Once the upstream serves another one, deciding the old id is a 409 (here, from what this
    replica saw change; in the store, when another replica saved the new definition first)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._superseded: dict[str, Approval] = {}
        """Ids of approvals whose item changed again since they were listed, each with the one now waiting."""
        gateway.on_change(self._changed)

    async def _changed(self, old: Snapshot, new: Snapshot) -> None:
        if old.approvals is new.approvals:
            return
        waiting = {(a.upstream, a.kind, a.key): a for a in new.approvals}
        ids = {a.id for a in new.approvals}
        for approval in old.approvals:
            now = waiting.get((approval.upstream, approval.kind, approval.key))
            if approval.id not in ids and now is not None:
                self._superseded[approval.id] = now
        while len(self._superseded) > SUPERSEDED_KEPT:
            del self._superseded[next(iter(self._superseded))]

    def pending(self, upstream: str | None = None) -> list[Approval]:
        return [a for a in self.gateway.snapshot.approvals if upstream is None or a.upstream == upstream]

    def find(self, approval_id: str) -> Approval:
        for approval in self.gateway.snapshot.approvals:
            if approval.id == approval_id:
                return approval
        if (now := self._waiting_instead(approval_id)) is not None:
            raise Conflict(
                f"approval {approval_id!r} is of a definition of {now.kind} {now.key!r} (upstream {now.upstream!r}) "
                f"that the upstream no longer serves; the one it serves now waits as approval {now.id!r}: review that one"
            )
        raise NotFound(
            f"no pending approval {approval_id!r}: it was decided already, or the item changed again "
            "(list the approvals anew)"
        )

    def _waiting_instead(self, approval_id: str) -> Approval | None:
        """The approval waiting now for the item `approval_id` was about, if the item changed since: the
        ids that superseded it followed (after two changes the first one's successor is gone too)."""
        waiting = {a.id: a for a in self.gateway.snapshot.approvals}
        seen = {approval_id}
        now = self._superseded.get(approval_id)
        while now is not None and now.id not in waiting and now.id not in seen and len(seen) < CHAIN_FOLLOWED:
            seen.add(now.id)
            now = self._superseded.get(now.id)
        return waiting.get(now.id) if now is not None else None

    def _record(self, approval: Approval) -> PinRecord | None:
        ident = (approval.upstream, approval.kind, approval.key)
        return next((r for r in self.gateway.snapshot.pins.records if (r.upstream, r.kind, r.key) == ident), None)

    async def decide(self, approval_id: str, *, approved: bool, actor: str) -> Approval:
        """Approve (pin the current definition, or forget a removed item) or reject (hold it)."""
        # One decision at a time, each with its snapshot rebuilt: a second decision of the same approval
        # finds it decided (404) rather than deciding it again.
        async with self.gateway.writing():
            return await self._decide(approval_id, approved=approved, actor=actor)

    async def _decide(self, approval_id: str, *, approved: bool, actor: str) -> Approval:
        approval = self.find(approval_id)
        record = self._record(approval)
        now = datetime.now(UTC)
        if approval.change == "removed":
            if not approved:
                raise Conflict(f"{approval.kind} {approval.key!r} is already gone; approve to acknowledge its removal")
            decision = record or PinRecord(upstream=approval.upstream, kind=approval.kind, key=approval.key)
        elif approved:
            item = next(
                i for i in self.gateway.snapshot.items
                if (i.upstream, i.kind, i.key) == (approval.upstream, approval.kind, approval.key)
            )
            decision = approve(item, actor, now)
        else:
            decision = reject(approval, record, actor, now)
        try:
            # Saved only if the store still holds what this replica listed: the definition the approval
            # names (not one another replica's rediscovery saved since) and the record it was made on.
            await self.gateway.repo.decide_pin(
                decision, keep=approval.change != "removed", was=record, serving=approval.new_hash
            )
        except StaleWrite as exc:
            await self.gateway.rebuild(announce=False)
            exc.detail = f"{exc.detail}: list the approvals anew and decide on what waits now"
            exc.args = (exc.detail,)
            raise
        audit.info(
            "pin %s: %s %s %r of upstream %s (%s) by %s",
            "approved" if approved else "rejected", approval.change, approval.kind, approval.key,
            approval.upstream, approval.new_hash or "removed", actor,
        )
        await self.gateway.rebuild()
        return approval
