"""Bastion's own requests on an SDK transport's streams, beside the SDK's session on them.

The gateway forwards results; it must not parse them into models and back on every call (that
costs more CPU than the rest of the hot path). The SDK's `ClientSession.send_request` always
validates the result, and its raw path is private, so the calls Bastion forwards are written to
the transport's write stream with ids of Bastion's own ("bastion-N"), and their answers and
progress are taken off the read stream before the session reads it. The SDK session keeps the
rest: the handshake, server-to-client requests, notifications, `subscriptions/listen`.

Stamped as the SDK stamps its requests: the MCP-Protocol-Version header always; on 2026-07-28 also
the protocol version, client info and client capabilities in `_meta` (the caller's capabilities
when the request carries them: a shared session speaks for the caller) and the Mcp-Method and
Mcp-Name headers.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from contextlib import suppress
from typing import Any

import anyio
import anyio.lowlevel
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import (
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PROTOCOL_VERSION_HEADER,
    NAME_BEARING_METHODS,
    encode_header_value,
)
from mcp.shared.message import ClientMessageMetadata, SessionMessage
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    CONNECTION_CLOSED,
    INVALID_REQUEST,
    PROTOCOL_VERSION_META_KEY,
    ErrorData,
    JSONRPCError,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    RequestId,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from bastion.core.ports import ProgressCallback

log = logging.getLogger("bastion.upstream")

_PREFIX = "bastion-"
_MAX_QUEUED_PROGRESS = 64
"""Progress notices held for a caller that has not taken them yet; past this, notices are dropped
(progress is advisory) rather than holding the read loop or growing without bound."""
_CANCEL_GRACE = 2.0


class _Pending:
    __slots__ = ("outcome", "progress", "wake")

    def __init__(self) -> None:
        self.outcome: dict[str, Any] | ErrorData | None = None
        self.progress: deque[tuple[float, float | None, str | None]] = deque()
        self.wake = anyio.Event()


class RawRequests:
    """Requests of Bastion's own on one transport; the transport's read stream offers each
    item to `route` first. Safe for any number of concurrent callers."""

    def __init__(self, *, client_info: dict[str, Any], capabilities: dict[str, Any]) -> None:
        self._client_info = client_info
        self._capabilities = capabilities
        self._write: Any = None
        self._pending: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self._closed = False

    @property
    def awaiting(self) -> int:
        """Requests sent (or being sent) that have no answer yet."""
        return len(self._pending)

    def attach(self, write: Any) -> None:
        """The transport's write stream (of SessionMessages), once it is open."""
        self._write = write

    def route(self, item: object) -> bool:
        """Take `item` if it answers, or reports progress on, a request of ours."""
        if not isinstance(item, SessionMessage):
            return False
        message = item.message
        if isinstance(message, JSONRPCResponse | JSONRPCError):
            request_id = message.id
            if not (isinstance(request_id, str) and request_id.startswith(_PREFIX)):
                return False
            pending = self._pending.get(request_id)
            if pending is not None:
                pending.outcome = message.result if isinstance(message, JSONRPCResponse) else message.error
                pending.wake.set()
            return True  # a late answer to an abandoned request of ours is nobody else's either
        if isinstance(message, JSONRPCNotification) and message.method == "notifications/progress":
            params = message.params or {}
            token, progress = params.get("progressToken"), params.get("progress")
            if not (isinstance(token, str) and token.startswith(_PREFIX)):
                return False
            pending = self._pending.get(token)
            if pending is not None and isinstance(progress, int | float) and len(pending.progress) < _MAX_QUEUED_PROGRESS:
                total, text = params.get("total"), params.get("message")
                pending.progress.append(
                    (float(progress), float(total) if isinstance(total, int | float) else None, text if isinstance(text, str) else None)
                )
                pending.wake.set()
            return True
        return False

    def close(self) -> None:
        """The transport ended: every request waiting fails as the connection closed."""
        self._closed = True
        closed = ErrorData(code=CONNECTION_CLOSED, message="Connection closed")
        for pending in self._pending.values():
            if pending.outcome is None:
                pending.outcome = closed
            pending.wake.set()

    def _stamp(self, method: str, params: dict[str, Any] | None, version: str) -> tuple[dict[str, Any], dict[str, str]]:
        out = dict(params) if params is not None else {}  # the caller's dict is not ours to change
        headers = {MCP_PROTOCOL_VERSION_HEADER: version}
        if version not in MODERN_PROTOCOL_VERSIONS:
            return out, headers
        meta = dict(out.get("_meta") or {})
        meta[PROTOCOL_VERSION_META_KEY] = version
        meta[CLIENT_INFO_META_KEY] = self._client_info
        if not isinstance(meta.get(CLIENT_CAPABILITIES_META_KEY), dict):
            meta[CLIENT_CAPABILITIES_META_KEY] = self._capabilities
        out["_meta"] = meta
        headers[MCP_METHOD_HEADER] = method
        name_key = NAME_BEARING_METHODS.get(method)
        if name_key is not None and isinstance(name := out.get(name_key), str):
            headers[MCP_NAME_HEADER] = encode_header_value(name)
        return out, headers

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None,
        *,
        version: str,
        on_progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        """Send `method` at the negotiated `version`; the result dict. MCPError on an error reply or
        a closed connection. Abandoned (cancelled) after it was written, the upstream is told."""
        if self._closed or self._write is None:
            raise MCPError(CONNECTION_CLOSED, "Connection closed")
        request_id = f"{_PREFIX}{next(self._ids)}"
        out, headers = self._stamp(method, params, version)
        if on_progress is not None:
            out["_meta"] = {**(out.get("_meta") or {}), "progressToken": request_id}
        message = JSONRPCRequest(jsonrpc="2.0", id=request_id, method=method, params=out) if out else (
            JSONRPCRequest(jsonrpc="2.0", id=request_id, method=method)
        )
        pending = self._pending[request_id] = _Pending()
        written = False
        try:
            await anyio.lowlevel.checkpoint_if_cancelled()
            written = True  # a write interrupted by cancellation may still have been delivered
            try:
                await self._write.send(SessionMessage(message, metadata=ClientMessageMetadata(headers=headers)))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                raise MCPError(CONNECTION_CLOSED, "Connection closed") from None
            return await self._outcome(pending, on_progress)
        except anyio.get_cancelled_exc_class():
            if written and pending.outcome is None and not self._closed:
                await self._cancel(request_id, version)
            raise
        finally:
            del self._pending[request_id]

    async def _outcome(self, pending: _Pending, on_progress: ProgressCallback | None) -> dict[str, Any]:
        while True:
            await pending.wake.wait()
            pending.wake = anyio.Event()
            while pending.progress:
                progress = pending.progress.popleft()
                if on_progress is not None:
                    try:
                        await on_progress(*progress)
                    except Exception:  # a caller's progress hook must not fail the call
                        log.exception("progress hook raised")
            outcome = pending.outcome
            if isinstance(outcome, ErrorData):
                raise MCPError(outcome.code, outcome.message, outcome.data)
            if outcome is not None:
                return outcome

    async def refuse(self, request_id: RequestId, message: str) -> None:
        """Answer a request of the upstream's with an invalid-request error (bounded; the
        connection may be gone)."""
        if self._write is None:
            return
        refusal = JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=INVALID_REQUEST, message=message))
        with anyio.move_on_after(_CANCEL_GRACE), suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self._write.send(SessionMessage(refusal))

    async def _cancel(self, request_id: str, version: str) -> None:
        """Tell the upstream a request is abandoned (bounded; the connection may be gone)."""
        method = "notifications/cancelled"
        note = JSONRPCNotification(jsonrpc="2.0", method=method, params={"requestId": request_id})
        headers = {MCP_PROTOCOL_VERSION_HEADER: version}
        if version in MODERN_PROTOCOL_VERSIONS:
            headers[MCP_METHOD_HEADER] = method
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CANCEL_GRACE):
            try:
                await self._write.send(SessionMessage(note, metadata=ClientMessageMetadata(headers=headers)))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass
