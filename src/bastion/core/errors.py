"""The one error tree. Each class carries its HTTP status and JSON-RPC code.

    BastionError
    ├── BadRequest            400 / -32602   input that can never succeed as sent
    │   ├── NameCollision     409 / -32602   two items would share one exposed name
    │   ├── InvalidArguments  422 / -32602   arguments that break the tool's input schema (`errors`)
    │   └── UnusableDocument  422 / -32602   an OpenAPI document Bastion cannot read (says where)
    ├── Unauthenticated       401 / -32030
    ├── Forbidden             403 / -32003
    │   ├── UpstreamNotConnected 403 / -32004 the caller has not connected their account to the upstream
    │   └── Quarantined       403 / -32003   a tool/prompt/resource whose definition awaits an admin's approval
    ├── NotFound              404 / -32601   an upstream, server or catalog item that does not exist
    │   └── UnknownItem       404 / -32602   a request naming a prompt or resource the server lacks
    │       ├── UnknownTool   404 / -32602   a tools/call naming a tool the server lacks
    │       └── UnknownAgentTask 404 / -32602 an A2A task or conversation the caller did not start
    ├── Conflict              409 / -32600
    ├── TooManyRequests       429 / -32029   slow down: `retry_after` seconds (e.g. a locked login)
    ├── UpstreamError         502 / -32010   the upstream failed us, not the client
    │   ├── UpstreamUnavailable  502 / -32011  could not connect, or the process is not running
    │   ├── UpstreamProtocolError 502 / -32012 it answered, but not as an MCP server
    │   │   └── UpstreamTooLarge 502 / -32015 one message or answer over Bastion's size limits
    │   ├── UpstreamRpcError  502 / (theirs)  a JSON-RPC error reply, passed on with its code
    │   ├── CredentialsUnavailable 502 / -32014 its stored credentials do not open (vault)
    │   ├── FetchFailed       502 / -32016   a document Bastion fetched (client metadata, keys) did not come
    │   └── UpstreamTimeout   504 / -32013   no answer within the deadline
    ├── RateLimited           429 / -32029   a rate limit is used up (retry_after in extra / data)
    └── ServiceUnavailable    503 / -32050   a shared dependency (Redis) is down; retry shortly
    (anything unexpected is answered at the edge as a generic 500 / -32603, its details only logged)

Upstream *tool* failures are not errors: they are results with `isError`.
Messages must never contain secrets (header values, env values, tokens).
"""

from __future__ import annotations

from typing import Any, ClassVar


class BastionError(Exception):
    """Base of every error Bastion raises on purpose."""

    http_status: ClassVar[int] = 500
    jsonrpc_code: ClassVar[int] = -32603
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class BadRequest(BastionError):
    http_status = 400
    jsonrpc_code = -32602
    title = "Bad request"


class NameCollision(BadRequest):
    http_status = 409
    title = "Name collision"


class InvalidArguments(BadRequest):
    """A call's arguments do not match the tool's input schema; `errors` lists each problem with a
    JSON pointer to the field (`{"pointer": "/a/0", "message": "..."}`)."""

    http_status = 422
    title = "Invalid arguments"


class UnusableDocument(BadRequest):
    """An OpenAPI document that is malformed, or asks for what Bastion refuses (an external `$ref`,
    a reference cycle); the detail names where."""

    http_status = 422
    title = "Unusable OpenAPI document"


class Unauthenticated(BastionError):
    http_status = 401
    jsonrpc_code = -32030
    title = "Unauthenticated"


class Forbidden(BastionError):
    http_status = 403
    jsonrpc_code = -32003
    title = "Forbidden"


class MisdirectedRequest(BastionError):
    """The Host header names a site this gateway does not serve (DNS rebinding, misrouted traffic)."""

    http_status = 421
    jsonrpc_code = -32600
    title = "Misdirected request"


class UpstreamNotConnected(Forbidden):
    """A per-user OAuth upstream the calling user has not connected their own account to (yet)."""

    jsonrpc_code = -32004
    title = "Upstream not connected"


class Quarantined(Forbidden):
    """An item whose definition changed (or is new) since an admin approved it, held by its upstream's pin."""

    title = "Quarantined"


class NotFound(BastionError):
    http_status = 404
    jsonrpc_code = -32601
    title = "Not found"


class UnknownItem(NotFound):
    """A request names a tool, prompt or resource the virtual server does not offer (invalid params)."""

    jsonrpc_code = -32602
    title = "Unknown item"


class UnknownTool(UnknownItem):
    title = "Unknown tool"


class UnknownAgentTask(UnknownItem):
    """A call names an A2A task or conversation the caller did not start through Bastion (or one
    unused past its hold time): the same answer whether it is another caller's or nobody's."""

    title = "Unknown task"


class Conflict(BastionError):
    http_status = 409
    jsonrpc_code = -32600
    title = "Conflict"


class StaleWrite(Conflict):
    """A conditional write found its row changed since it was read (by another replica): the change
    is made again on what is stored now, and answered as this 409 only if it keeps losing."""


class TooManyRequests(BastionError):
    """Refused for now; `extra["retry_after"]` (whole seconds) becomes the Retry-After header."""

    http_status = 429
    jsonrpc_code = -32029
    title = "Too many requests"


class UpstreamError(BastionError):
    http_status = 502
    jsonrpc_code = -32010
    title = "Upstream error"


class UpstreamUnavailable(UpstreamError):
    jsonrpc_code = -32011
    title = "Upstream unavailable"


class UpstreamProtocolError(UpstreamError):
    jsonrpc_code = -32012
    title = "Upstream is not an MCP server"


class UpstreamTooLarge(UpstreamProtocolError):
    """An upstream sent more than BASTION_UPSTREAM_MAX_MESSAGE_BYTES in one message (or more than
    BASTION_UPSTREAM_MAX_RESULT_BYTES in one answer); reading stopped there."""

    jsonrpc_code = -32015
    title = "Upstream message too large"


class FetchFailed(UpstreamError):
    """A document Bastion fetched over HTTP could not be had. On behalf of untrusted input the detail
    is the same whatever the cause (closed port, refused address, timeout), so it is no port scanner."""

    jsonrpc_code = -32016
    title = "Fetch failed"


class UnapprovedDestination(UpstreamProtocolError):
    """A REST upstream's document or an A2A agent's card now sends calls, and so the upstream's stored
    credentials, to an origin the operator never approved (core/destinations.py): refused until an admin does."""

    jsonrpc_code = -32017
    title = "Upstream moved to an unapproved origin"


class UpstreamRpcError(UpstreamError):
    """The upstream answered a request with a JSON-RPC error; the client sees its code and message."""

    title = "Upstream returned an error"

    def __init__(self, detail: str, code: int, data: Any = None) -> None:
        super().__init__(detail)
        self.rpc_code = code
        self.data = data


class CredentialsUnavailable(UpstreamError):
    """The upstream's sealed credentials cannot be opened (altered, another owner's, or an unknown key)."""

    jsonrpc_code = -32014
    title = "Upstream credentials unavailable"


class UpstreamTimeout(UpstreamError):
    http_status = 504
    jsonrpc_code = -32013
    title = "Upstream timeout"


class RateLimited(TooManyRequests):
    """A rate limit is used up; `retry_after` (whole seconds) says when the window reopens."""

    title = "Rate limited"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.retry_after = retry_after


class ServiceUnavailable(BastionError):
    """Something this request needs (Redis, for shared limits) is unreachable; retry shortly."""

    http_status = 503
    jsonrpc_code = -32050
    title = "Service unavailable"


class RecordsRefused(ServiceUnavailable):
    """The database is reachable but refused the records themselves (a value it cannot store): a
    retry of the same records fails the same way."""
