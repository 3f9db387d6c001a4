"""Era bridge, 2025-11-25 client side: its capabilities travel upstream, and an upstream's
`input_required` questions become live requests on the client's session.

On the SDK path a question rides the client's in-flight POST stream; on the fast path (which
answers with one JSON body) it goes on the session's standalone GET stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp import MCPError
from mcp.server import ServerRequestContext
from mcp.server.connection import Connection
from mcp.shared.message import ServerMessageMetadata
from mcp_types import CreateMessageResult, ElicitResult, InputRequest, ListRootsResult
from pydantic import BaseModel, TypeAdapter, ValidationError

from bastion.core.ports import AskCallback

CAPABILITIES_META = "io.modelcontextprotocol/clientCapabilities"
_INPUT_REQUEST: TypeAdapter[InputRequest] = TypeAdapter(InputRequest)
_RESULTS: dict[str, type[BaseModel]] = {
    "sampling/createMessage": CreateMessageResult,
    "elicitation/create": ElicitResult,
    "roots/list": ListRootsResult,
}


def capabilities_of(connection: Connection) -> dict[str, Any] | None:
    """What a 2025-11-25 client declared at `initialize`, in wire form."""
    caps = connection.client_capabilities
    return caps.model_dump(by_alias=True, mode="json", exclude_none=True) if caps is not None else None


def with_capabilities(params: dict[str, Any], capabilities: dict[str, Any] | None) -> dict[str, Any]:
    """`params` carrying the client's capabilities in `_meta`, as a 2026-07-28 client's would."""
    if capabilities is None:
        return params
    meta = params.get("_meta")
    return {**params, "_meta": {**(meta if isinstance(meta, dict) else {}), CAPABILITIES_META: capabilities}}


def _error(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message}


def ask_on_request(ctx: ServerRequestContext[Any]) -> AskCallback:
    """Questions go on the client's in-flight request stream (the SDK path)."""
    session, related = ctx.session, ServerMessageMetadata(related_request_id=ctx.request_id)

    async def ask(method: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            request = _INPUT_REQUEST.validate_python({"method": method, "params": params})
            result = await session.send_request(request, _RESULTS[method], metadata=related)
        except (ValidationError, KeyError):
            return _error(-32602, f"Bastion cannot put an input request of method {method!r} to this client")
        except MCPError as exc:
            return _error(exc.code, exc.message)
        return result.model_dump(by_alias=True, mode="json", exclude_none=True)

    return ask


def ask_on_connection(connection: Connection, reachable: Callable[[], bool]) -> AskCallback:
    """Questions go on the session's standalone stream (the fast path, which serves calls that ask
    for no progress, has no request stream). When `reachable` says no GET stream is open to carry
    one (with replicas, another may hold it), the upstream is answered with an error at once: the
    question would only be stored, and the call would wait out its deadline."""

    async def ask(method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method not in _RESULTS:
            return _error(-32602, f"Bastion cannot put an input request of method {method!r} to this client")
        if not connection.has_standalone_channel or not reachable():
            return _error(-32603, f"Bastion cannot put this {method} to the caller: it has no stream open to be asked on")
        try:
            return dict(await connection.outbound.send_raw_request(method, params, None))
        except MCPError as exc:
            return _error(exc.code, exc.message)

    return ask
