"""The stdin/stdout streams of a stdio MCP server that answers a line it cannot read.

The SDK's `stdio_server` passes a line that is not a JSON-RPC message on as an exception, which
the server's dispatcher only logs: the client waits for an answer that never comes. JSON-RPC 2.0
says to answer it, with id null since none could be read: -32700 if the line is not JSON, -32600
if it is JSON but not a request, a notification or a response. Blank lines are skipped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp_types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError
from pydantic import ValidationError

from bastion.web.session_link import WrappedReadStream


def unreadable_line_error(exc: ValidationError) -> JSONRPCError | None:
    """The answer to a line the transport could not read as a JSON-RPC message (None: a blank line)."""
    first = exc.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        text = first.get("input")
        if isinstance(text, str | bytes) and not text.strip():
            return None
        return JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=PARSE_ERROR, message="Parse error"))
    return JSONRPCError(
        jsonrpc="2.0", id=None,
        error=ErrorData(code=INVALID_REQUEST, message="Invalid Request: not a JSON-RPC request, notification or response"),
    )


class AnsweringReadStream(WrappedReadStream):
    """A read stream that answers unreadable lines on `write` instead of handing them on."""

    def __init__(self, inner: Any, write: Any) -> None:
        self._inner = inner
        self._write = write

    @property
    def last_context(self) -> Any:
        """The sender's context of the last item, as the SDK's context streams offer it."""
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> SessionMessage | Exception:
        while True:
            item: SessionMessage | Exception = await self._inner.receive()
            if not isinstance(item, ValidationError):
                return item  # a message, or a failure of the transport itself: the dispatcher's
            answer = unreadable_line_error(item)
            if answer is not None:
                await self._write.send(SessionMessage(answer))

    async def aclose(self) -> None:
        await self._inner.aclose()


@asynccontextmanager
async def answering_stdio_server(
    stdin: anyio.AsyncFile[str] | None = None, stdout: anyio.AsyncFile[str] | None = None
) -> AsyncIterator[tuple[AnsweringReadStream, Any]]:
    """`mcp.server.stdio.stdio_server`, answering lines that are not JSON-RPC messages."""
    async with stdio_server(stdin, stdout) as (read, write):
        yield AnsweringReadStream(read, write), write
