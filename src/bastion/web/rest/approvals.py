"""REST: /api/v1/approvals — pin changes waiting for an admin, with a diff; approve or reject them."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.control.approvals import Approvals
from bastion.core.errors import Forbidden, NotFound
from bastion.core.identity import can_see, is_admin
from bastion.core.pinning import Approval
from bastion.web.rest.access import principal_of
from bastion.web.rest.listing import paged


def approval_json(approval: Approval) -> dict[str, Any]:
    return {
        "id": approval.id,
        "upstream": approval.upstream,
        "kind": approval.kind,
        "key": approval.key,
        "change": approval.change,
        "pin": approval.mode,
        "held": approval.mode == "block",
        "old": approval.old,
        "new": approval.new,
        "old_hash": approval.old_hash,
        "new_hash": approval.new_hash,
        "diff": approval.diff,
    }


def approval_routes(approvals: Approvals) -> list[Route]:
    def visible(request: Request, approval: Approval) -> bool:
        upstream = approvals.gateway.snapshot.upstreams.get(approval.upstream)
        return upstream is not None and can_see(principal_of(request), upstream.spec)

    async def list_approvals(request: Request) -> Response:
        upstream = request.query_params.get("upstream")
        shown = [a for a in approvals.pending(upstream) if visible(request, a)]
        snap = approvals.gateway.snapshot
        principal = principal_of(request)
        seen = {n for n, u in snap.upstreams.items() if (upstream is None or n == upstream) and can_see(principal, u.spec)}
        items = [i for i in snap.items if i.upstream in seen]
        return JSONResponse(
            {
                **paged(request, [approval_json(a) for a in shown]),
                "quarantined": sum(1 for i in items if i.quarantined),
                "flagged": sum(1 for i in items if i.pin_status is not None and not i.quarantined),
            }
        )

    async def get(request: Request) -> Response:
        approval = approvals.find(request.path_params["id"])
        if not visible(request, approval):
            raise NotFound(f"no pending approval {approval.id!r}")
        return JSONResponse(approval_json(approval))

    def decision(approved: bool) -> Any:
        async def decide(request: Request) -> Response:
            principal = principal_of(request)
            approval = approvals.find(request.path_params["id"])
            if not visible(request, approval):
                raise NotFound(f"no pending approval {approval.id!r}")
            if not is_admin(principal):
                raise Forbidden("only an admin approves or rejects definitions", missing="role:admin")
            decided = await approvals.decide(approval.id, approved=approved, actor=principal.user or principal.id)
            return JSONResponse({**approval_json(decided), "decision": "approved" if approved else "rejected"})

        return decide

    return [
        Route("/api/v1/approvals", list_approvals, methods=["GET"]),
        Route("/api/v1/approvals/{id}", get, methods=["GET"]),
        Route("/api/v1/approvals/{id}/approve", decision(True), methods=["POST"]),
        Route("/api/v1/approvals/{id}/reject", decision(False), methods=["POST"]),
    ]
