"""What the observe stage knows about one finished request, and how its outcome is named.

Pure data for the telemetry adapters (metrics, logs, audit, usage). `params` and `result` are
references for the audit log's keyed hashes only: no adapter may show or store their content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bastion.core.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    Unauthenticated,
    UpstreamError,
    UpstreamTimeout,
)

OUTCOMES: tuple[str, ...] = (
    "ok", "tool_error", "upstream_error", "timeout", "denied", "rate_limited", "invalid", "unavailable", "cancelled",
    "error",
)
"""Every value of the `outcome` label and audit field (a closed set: bounded cardinality).
`cancelled`: the caller cancelled the call, or went away before its answer."""

AUDITED_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})
"""Requests that use an item (and so are audited and counted as usage); lists are not."""


@dataclass(slots=True)
class CallRecord:
    """One finished MCP request as seen by the pipeline's first stage."""

    request_id: str
    started: float
    """Wall-clock time (epoch seconds) the request began."""
    server: str
    method: str
    outcome: str
    seconds: float
    """Total time in the pipeline."""
    upstream_seconds: float
    """Time spent waiting on the upstream (every attempt); the rest is the gateway's own."""
    upstream: str | None = None
    item: str | None = None
    """The catalog item's exposed name (tool or prompt name, resource URI or template), once routed."""
    asked: str | None = None
    """For a use of an item the server does not have: the name or URI asked for, bounded and with
    hidden characters written out. Only the audit keeps it (metrics and usage stay bounded by the catalog)."""
    kind: str | None = None
    principal: str | None = None
    user: str | None = None
    token: str | None = None
    address: str | None = None
    error: str | None = None
    """The error's title and detail for a failure (Bastion's own words: never argument values)."""
    params: dict[str, Any] | None = None
    result: dict[str, Any] | None = None


def outcome_of_error(exc: BaseException) -> str:
    """The outcome label of a request that failed with `exc`."""
    if isinstance(exc, Unauthenticated | Forbidden):
        return "denied"
    if isinstance(exc, TooManyRequests):
        return "rate_limited"
    if isinstance(exc, UpstreamTimeout):
        return "timeout"
    if isinstance(exc, UpstreamError):
        return "upstream_error"
    if isinstance(exc, BadRequest | NotFound):
        return "invalid"
    if isinstance(exc, ServiceUnavailable):
        return "unavailable"
    return "error"


def outcome_of_result(result: dict[str, Any]) -> str:
    """`tool_error` for a tool result flagged `isError` (a failure that is a result), else `ok`."""
    return "tool_error" if result.get("isError") is True else "ok"


@dataclass(slots=True)
class EdgeEvent:
    """Something the edge saw outside the pipeline: an admin change over REST (`change`), a read
    audited as one (`read`: the configuration export), a sign-in (`sign_in`), or a request refused
    before it reached anything (`refused`)."""

    kind: str
    started: float
    action: str
    """What was asked, by route: e.g. `PATCH /api/v1/upstreams/{name}`."""
    target: str
    outcome: str
    status: int
    seconds: float
    reason: str | None = None
    """For a refusal: the error's title in snake case (a closed set, usable as a label)."""
    principal: str | None = None
    user: str | None = None
    token: str | None = None
    address: str | None = None
    detail: str | None = None


def reason_of(title: str) -> str:
    """A label-safe reason from an error title ("Too many requests" -> "too_many_requests")."""
    return title.lower().replace(" ", "_")


def outcome_of_status(status: int) -> str:
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "denied"
    if status == 429:
        return "rate_limited"
    if status in (400, 404, 405, 409, 413, 422):
        return "invalid"
    if status == 503:
        return "unavailable"
    return "error"
