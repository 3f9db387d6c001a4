"""REST: /api/v1/catalog/duplicates — groups of tools on different upstreams that do the same job."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.control.duplicates import Duplicates
from bastion.core.duplicates import Pair
from bastion.core.identity import can_see
from bastion.web.rest.access import principal_of
from bastion.web.rest.listing import only_paging


def pair_json(pair: Pair) -> dict[str, Any]:
    return {"tool": pair.a, "duplicates": pair.b, "score": pair.score, "reason": pair.reason}


def duplicate_routes(duplicates: Duplicates) -> list[Route]:
    async def list_groups(request: Request) -> Response:
        only_paging(request)
        principal = principal_of(request)
        snap = duplicates.gateway.snapshot
        seen = {n for n, u in snap.upstreams.items() if can_see(principal, u.spec)}
        only = request.query_params.get("upstream")
        groups = []
        for found in await duplicates.groups():
            # A group is shown only whole: a tool the caller cannot see would be named in its reason.
            if not set(found.upstreams) <= seen or (only and only not in found.upstreams):
                continue
            groups.append(found.model_dump())
        return JSONResponse({"groups": groups})

    return [Route("/api/v1/catalog/duplicates", list_groups, methods=["GET"])]
