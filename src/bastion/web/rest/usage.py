"""REST: /api/v1/usage — calls, errors, latency and callers per item over time, summed over every
replica; /api/v1/usage/unused — catalog items nobody called in the last N days."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.core.errors import BadRequest
from bastion.core.models import CatalogItem
from bastion.core.ports import UsageStore
from bastion.core.usage import GROUPS, UsageQuery, bucket_start, granularity_for, summarize
from bastion.telemetry.usage import UsageRecorder
from bastion.web.rest.common import query_text, query_time
from bastion.web.rest.listing import paged


def usage_routes(
    store: UsageStore, recorder: UsageRecorder, catalog: Callable[[], tuple[CatalogItem, ...]], kept: dict[str, float]
) -> list[Route]:
    async def usage(request: Request) -> Response:
        now = datetime.now(UTC)
        since = query_time(request, "since") or now - timedelta(days=1)
        until = query_time(request, "until") or now + timedelta(minutes=1)
        if until <= since:
            raise BadRequest("until must be after since")
        group_by = request.query_params.get("group_by") or "item"
        if group_by not in GROUPS:
            raise BadRequest(f"group_by must be one of {', '.join(GROUPS)}")
        granularity = group_by if group_by in ("minute", "hour", "day") else granularity_for(since, now, kept)
        query = UsageQuery(
            since=bucket_start(since, granularity).isoformat(),
            until=until.isoformat(),
            granularity=granularity,
            server=query_text(request, "server"),
            upstream=query_text(request, "upstream"),
            item=query_text(request, "tool") or query_text(request, "item"),
        )
        await recorder.flush()  # this replica's latest counts are included
        rows = await store.query(query)
        return JSONResponse(
            {"since": query.since, "until": query.until, "granularity": granularity, "group_by": group_by,
             **paged(request, summarize(rows, group_by))}
        )

    async def unused(request: Request) -> Response:
        try:
            days = float(request.query_params.get("days") or 30)
        except ValueError:
            raise BadRequest("days must be a number") from None
        if not 0 < days < math.inf:  # NaN compares false too
            raise BadRequest("days must be a positive number")
        try:
            since = (datetime.now(UTC) - timedelta(days=days)).isoformat()
        except OverflowError:
            raise BadRequest("days must not reach back before the year 1") from None
        await recorder.flush()
        used = await store.used_since(since)
        items = [
            {"kind": i.kind, "name": i.name_override or i.gateway_name, "upstream": i.upstream, "enabled": i.enabled}
            for i in catalog()
            if i.kind in ("tool", "prompt", "resource", "resource_template")
            and (i.upstream, i.name_override or i.gateway_name) not in used
        ]
        return JSONResponse({"days": days, **paged(request, sorted(items, key=lambda i: (str(i["kind"]), str(i["name"]))))})

    return [
        Route("/api/v1/usage", usage, methods=["GET"]),
        Route("/api/v1/usage/unused", unused, methods=["GET"]),
    ]
