"""REST: /api/v1/catalog/duplicates — groups of tools on different upstreams that do the same job."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.control.duplicates import Duplicates
from bastion.core.duplicates import Pair
from bastion.web.rest.access import principal_of, reach, sees_upstream
from bastion.web.rest.listing import paged


def pair_json(pair: Pair) -> dict[str, Any]:
    return {"tool": pair.a, "duplicates": pair.b, "score": pair.score, "reason": pair.reason}


def duplicate_routes(duplicates: Duplicates) -> list[Route]:
    async def list_groups(request: Request) -> Response:
        principal = principal_of(request)
        snap = duplicates.gateway.snapshot
        # A token limited to some servers reads only what those serve, here as in the catalog.
        limit = reach(principal, snap.servers)
        seen = {n for n, u in snap.upstreams.items() if sees_upstream(principal, u, limit)}
        readable = None if limit is None else {
            i.gateway_name for i in snap.items if i.kind == "tool" and limit.allows_item(i.upstream, i.kind, i.key)
        }
        only = request.query_params.get("upstream")
        groups = []
        for found in await duplicates.groups():
            # A group is shown only whole: a tool the caller cannot see would be named in its reason.
            hidden = not set(found.upstreams) <= seen or (readable is not None and not set(found.tools) <= readable)
            if hidden or (only and only not in found.upstreams):
                continue
            groups.append(found.model_dump())
        return JSONResponse(paged(request, groups, "groups"))

    return [Route("/api/v1/catalog/duplicates", list_groups, methods=["GET"])]
