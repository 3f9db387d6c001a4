"""The fast path for plain 2026-07-28 requests: parse once, run the pipeline, answer JSON.

A stateless request needs no session, so the SDK's per-request machinery (a connection, a
dispatch context, memory streams, model validation of the request and of the result) is pure
overhead for the common case. This serves the plain case itself and hands everything else —
progress or log opt-ins, Mcp-Param-* headers, anything the envelope ladder would reject, methods
it does not know — to the SDK unchanged, with the body replayed, so the SDK stays the one
authority on the protocol's edge cases and their exact errors.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from mcp.shared.inbound import ERROR_CODE_HTTP_STATUS, classify_inbound_request, find_duplicated_routing_header
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.types import Message, Receive, Scope, Send

from bastion.core.errors import BastionError
from bastion.pipeline.base import Next
from bastion.pipeline.context import CallContext, Principal
from bastion.pipeline.route import SERVED_METHODS

log = logging.getLogger("bastion.mcp")

# Lists and reads are not promised fresh for any time (upstreams change them without notice), and
# are kept private to the caller's authorization context. The SDK path applies the same hints.
CACHE_HINTED_METHODS = frozenset({"tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read"})
_OPT_INS = ("progressToken", "io.modelcontextprotocol/logLevel")
_JSON_HEADERS = [(b"content-type", b"application/json")]

Fallback = Callable[[Receive], Awaitable[None]]
ErrorMapper = Callable[[BastionError], tuple[int, str, Any]]


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields the already-read body once, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _plain_request(scope: Scope, body: bytes) -> dict[str, Any] | None:
    """The decoded request if it is plain enough for the fast path, else None."""
    raw_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    headers = dict(raw_headers)
    if headers.get("mcp-protocol-version") not in MODERN_PROTOCOL_VERSIONS:
        return None
    accept = headers.get("accept", "")
    if "application/json" not in accept or "text/event-stream" not in accept:
        return None
    if any(name.startswith("mcp-param-") for name, _ in raw_headers):
        return None
    try:
        request = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(request, dict) or request.get("jsonrpc") != "2.0" or request.get("method") not in SERVED_METHODS:
        return None
    request_id = request.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, str | int):
        return None
    params = request.get("params")
    if not isinstance(params, dict) or any(key in (params.get("_meta") or {}) for key in _OPT_INS):
        return None
    if find_duplicated_routing_header(raw_headers) is not None:
        return None
    if not hasattr(classify_inbound_request(request, headers=headers), "protocol_version"):
        return None  # a ladder rejection: the SDK writes it
    return request


async def _respond(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def serve_fast(
    server: str,
    pipeline: Next,
    to_error: ErrorMapper,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    max_body: int,
    fallback: Fallback,
) -> None:
    """Serve one POST: on the fast path when plain, else through `fallback` with the body replayed."""
    body = await _read_body(receive, max_body)
    if body is None:
        await fallback(receive)  # disconnected or too large: the SDK answers that
        return
    request = _plain_request(scope, body)
    if request is None:
        await fallback(_replay(body, receive))
        return
    principal = scope.get("bastion.principal")
    call = CallContext(
        server=server,
        method=request["method"],
        params=request["params"],
        principal=principal if isinstance(principal, Principal) else None,
    )
    outcome: dict[str, Any] = {}

    async def watch_disconnect(cancel: anyio.CancelScope) -> None:
        # A client that goes away cancels the call, and with it the upstream request.
        while (await receive())["type"] != "http.disconnect":
            pass
        cancel.cancel()

    async with anyio.create_task_group() as tg:
        # The call runs in this task; only the watcher needs one of its own.
        tg.start_soon(watch_disconnect, tg.cancel_scope)
        try:
            outcome["result"] = await pipeline(call)
        except BastionError as exc:
            outcome["error"] = to_error(exc)
        except Exception:
            log.exception("%s on %s failed", call.method, server)
            outcome["error"] = (-32603, "Internal error", None)
        tg.cancel_scope.cancel()
    if "result" in outcome:
        result = outcome["result"]
        if call.method in CACHE_HINTED_METHODS:
            result = {"ttlMs": 0, "cacheScope": "private", **result}
        if "resultType" not in result:
            result = {**result, "resultType": "complete"}
        await _respond(send, 200, {"jsonrpc": "2.0", "id": request["id"], "result": result})
    elif "error" in outcome:
        code, message, data = outcome["error"]
        error: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            error["data"] = data
        await _respond(send, ERROR_CODE_HTTP_STATUS.get(code, 200), {"jsonrpc": "2.0", "id": request["id"], "error": error})
