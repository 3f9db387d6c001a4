"""Approving and rejecting pin changes (core/pinning.py): the admin's side of rug-pull protection."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from bastion.control.gateway import Gateway
from bastion.core.errors import Conflict, NotFound
from bastion.core.pinning import Approval, PinRecord, approve, reject

audit = logging.getLogger("bastion.audit")


class Approvals:
    """Decisions on what a refresh or list_changed brought; each one is saved, then the snapshot rebuilt."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def pending(self, upstream: str | None = None) -> list[Approval]:
        return [a for a in self.gateway.snapshot.approvals if upstream is None or a.upstream == upstream]

    def find(self, approval_id: str) -> Approval:
        for approval in self.gateway.snapshot.approvals:
            if approval.id == approval_id:
                return approval
        raise NotFound(
            f"no pending approval {approval_id!r}: it was decided already, or the item changed again "
            "(list the approvals anew)"
        )

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
            if record is not None:
                await self.gateway.repo.save_pins([], drop=[record])
        elif approved:
            item = next(
                i for i in self.gateway.snapshot.items
                if (i.upstream, i.kind, i.key) == (approval.upstream, approval.kind, approval.key)
            )
            await self.gateway.repo.save_pins([approve(item, actor, now)])
        else:
            await self.gateway.repo.save_pins([reject(approval, record, actor, now)])
        audit.info(
            "pin %s: %s %s %r of upstream %s (%s) by %s",
            "approved" if approved else "rejected", approval.change, approval.kind, approval.key,
            approval.upstream, approval.new_hash or "removed", actor,
        )
        await self.gateway.rebuild()
        return approval
