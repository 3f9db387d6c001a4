"""REST: /api/v1/audit — list the audit log (filters, cursor pagination) and verify its chains."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.core.audit_chain import AuditEntry, entry_values
from bastion.core.errors import BadRequest
from bastion.core.ports import AuditFilter
from bastion.telemetry.audit import AuditLog, audit_time
from bastion.web.rest.common import query_text, query_time
from bastion.web.rest.listing import count, only_paging

MAX_LIMIT = 1000
MAX_ID = 2**31 - 1
"""The largest record id (a 32-bit INTEGER column): PostgreSQL cannot compare the column with a larger
position (a 500), so a cursor past it is refused as one that was never given."""


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    return entry_values(entry)


def _time(request: Request, name: str) -> str | None:
    when = query_time(request, name)
    return None if when is None else audit_time(when)


def audit_filter(request: Request) -> AuditFilter:
    only_paging(request, "limit", "cursor", "after")
    since, until = _time(request, "since"), _time(request, "until")
    if since is not None and until is not None and until <= since:
        raise BadRequest("until must be after since")
    return AuditFilter(
        since=since,
        until=until,
        action=query_text(request, "action"),
        actor=query_text(request, "actor"),
        target=query_text(request, "target"),
        outcome=query_text(request, "outcome"),
        server=query_text(request, "server"),
        before=count(request, "cursor", None, 0, MAX_ID),
        after=count(request, "after", None, 0, MAX_ID),
        limit=count(request, "limit", 100, 1, MAX_LIMIT),
    )


def audit_routes(audit: AuditLog) -> list[Route]:
    async def list_records(request: Request) -> Response:
        query = audit_filter(request)
        await audit.flush()  # what this replica recorded so far is included
        found = await audit.store.find(query)
        cursor = found[-1].id if len(found) == query.limit and query.after is None else None
        return JSONResponse({"items": [entry_json(e) for e in found], "next_cursor": cursor})

    async def verify(_request: Request) -> Response:
        await audit.flush(sign=True)
        verdict = await audit.verify()
        return JSONResponse(verdict.as_json() | {"public_keys": audit.keys.public_keys()})

    return [
        Route("/api/v1/audit", list_records, methods=["GET"]),
        Route("/api/v1/audit/verify", verify, methods=["POST"]),
    ]
