"""Open the SDK transport for an upstream spec, with a tap that tells when it closes.

A message an SDK transport's parser gave up on because it nests too deep (the MCP SDK's parser stops
at about 200 levels; it used to be dropped, and the call it answered waited out its deadline)
becomes an error answer naming Bastion's depth limit for the request its id names.

stdio children get a pipe for stderr whose lines go to Bastion's log at DEBUG (an upstream may print
its own secrets there), prefixed by upstream name, with the values of its environment (where the
operator's vault secrets reach it) written as [redacted]; the last few are kept so a failure is
reported as one warning that ends with them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, TextIO

import anyio
import httpx2
import mcp_types as types
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from bastion.core.errors import UpstreamProtocolError
from bastion.core.json_nesting import UPSTREAM_MAX_DEPTH, body_too_deep, too_deep_detail
from bastion.core.models import UpstreamSpec
from bastion.upstream.raw import RawRequests
from bastion.upstream.stdio import is_upstream_request, stdio_transport, top_level_id

log = logging.getLogger("bastion.upstream")


_ID_ZONE = 256
"""How much of a refused message's start and end is searched for its id."""
_PARSER_GAVE_UP = "recursion limit exceeded"
"""How the SDK's parser (pydantic-core) words JSON nested deeper than it reads."""
_TAIL_LINES = 5
_TAIL_CHARS = 400
_tails: dict[str, deque[str]] = {}
_HIDDEN_MIN = 6
"""Environment values this long or longer are hidden in stderr lines (shorter ones, a port or a
flag, would garble every line and hide nothing worth hiding)."""
REDACTED = "[redacted]"


class _Redactor:
    """Writes each of `values` (the longest first) as REDACTED in a line; `longest` is how far past
    a line's cut one may reach (the line is redacted with that much more read, then cut)."""

    def __init__(self, values: Iterable[str]) -> None:
        self._hidden = sorted({v for v in values if len(v) >= _HIDDEN_MIN}, key=len, reverse=True)
        self.longest = len(self._hidden[0]) if self._hidden else 0

    def __call__(self, line: str) -> str:
        for value in self._hidden:
            line = line.replace(value, REDACTED)
        return line


def stderr_tail(upstream: str) -> str:
    """The last lines a stdio upstream wrote to stderr, joined and shortened ("" if none)."""
    text = " | ".join(_tails.get(upstream, ()))
    return text if len(text) <= _TAIL_CHARS else "…" + text[-_TAIL_CHARS:]


_LINE_CHARS = 4096
"""A stderr line longer than this is logged cut short: a child that writes megabytes without a
newline must not grow Bastion's memory (or its log) by as much."""


def _stderr_lines(stream: TextIO, redact: _Redactor) -> Iterator[str]:
    """The child's stderr lines, redacted, each at most _LINE_CHARS, the rest of a longer one skipped.
    A line is redacted before it is cut: a hidden value across the cut must not leave its start."""
    while chunk := stream.readline(_LINE_CHARS + redact.longest):
        ended = chunk.endswith("\n")
        text = redact(chunk.rstrip("\n"))
        skipped = max(0, len(text) - _LINE_CHARS)
        text = text[:_LINE_CHARS]
        if not ended:
            while (more := stream.readline(_LINE_CHARS)) and not more.endswith("\n"):
                skipped += len(more)
            skipped += len(more.rstrip("\n"))
        yield (f"{text}… ({skipped} more characters)" if skipped else text) + "\n"


def _stderr_pump(upstream: str, read_fd: int, redact: _Redactor) -> None:
    tail = _tails[upstream] = deque(maxlen=_TAIL_LINES)
    with open(read_fd, encoding="utf-8", errors="replace") as stream:
        for line in _stderr_lines(stream, redact):
            if line.strip():
                tail.append(line.strip()[:200])
            log.debug("[%s] %s", upstream, line.rstrip())


@asynccontextmanager
async def _stderr_to_log(upstream: str, hidden: Iterable[str] = ()) -> AsyncIterator[Any]:
    """A writable file for a child's stderr; a thread copies its lines into the log, `hidden` values redacted."""
    read_fd, write_fd = os.pipe()
    pump_args = (upstream, read_fd, _Redactor(hidden))
    thread = threading.Thread(target=_stderr_pump, args=pump_args, name=f"stderr-{upstream}", daemon=True)
    thread.start()
    with open(write_fd, "w") as errlog:
        yield errlog
    # The child has exited and our write end is closed: the pump sees EOF and ends.


@asynccontextmanager
async def open_transport(
    spec: UpstreamSpec,
    http_client: httpx2.AsyncClient | None,
    closed: anyio.Event,
    auth: httpx2.Auth | None = None,
    sse_client_factory: Any = None,
    max_message_bytes: int = 16 * 1024 * 1024,
    raw: RawRequests | None = None,
) -> AsyncIterator[tuple[Any, Any]]:
    """Yield (read, write) streams for `spec`; `closed` is set when the upstream's side ends.
    `auth` and `sse_client_factory` (Bastion's guarded clients) are for SSE; the streamable HTTP
    client carries its own auth, SSRF rules and size caps in `http_client`; a stdio child's lines
    are capped at `max_message_bytes` (upstream/stdio.py). `raw` sends Bastion's own requests on the
    streams and takes their answers off the read stream (upstream/raw.py)."""
    async with AsyncExitStack() as stack:
        streams: AbstractAsyncContextManager[tuple[Any, Any]]
        if spec.transport == "stdio":
            errlog = await stack.enter_async_context(_stderr_to_log(spec.name, spec.env.values()))
            params = StdioServerParameters(command=spec.command or "", args=list(spec.args), env=dict(spec.env) or None)
            streams = stdio_transport(params, errlog, upstream=spec.name, max_message_bytes=max_message_bytes)
        elif spec.transport == "sse":
            extra = {"httpx_client_factory": sse_client_factory} if sse_client_factory is not None else {}
            streams = sse_client(spec.url or "", headers=dict(spec.headers), sse_read_timeout=24 * 3600, auth=auth, **extra)
        else:
            # Bastion's client caps each event itself (BASTION_UPSTREAM_MAX_MESSAGE_BYTES), with a clear error.
            streams = streamable_http_client(spec.url or "", http_client=http_client, max_sse_event_size=None)
        read, write = await stack.enter_async_context(streams)
        tapped = _Tapped(read, closed, raw, spec.name)
        if raw is not None:
            raw.attach(write)
        try:
            yield tapped, write
        finally:
            closed.set()
            if raw is not None:
                raw.close()


class _Tapped:
    """The transport's read stream, setting `closed` when it ends (no task, no buffer of its own:
    a caller's idle upstream session should cost little)."""

    def __init__(self, inner: Any, closed: anyio.Event, raw: RawRequests | None = None, upstream: str = "") -> None:
        self._inner, self._closed, self._raw, self._upstream = inner, closed, raw, upstream

    async def receive(self) -> Any:
        try:
            while True:
                item = await self._inner.receive()
                if isinstance(item, ValidationError):
                    item = await self._too_deep(item)
                    if item is None:
                        continue
                elif isinstance(item, SessionMessage) and isinstance(item.message, types.JSONRPCError):
                    item = self._worded(item)
                if self._raw is None or not self._raw.route(item):
                    return item
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
            self._closed.set()
            if self._raw is not None:
                self._raw.close()
            raise

    async def _too_deep(self, exc: ValidationError) -> Any:
        """`exc` unchanged unless it is the parser giving up on a message nested too deep: then an
        error answer to the request it answers, or None once a request of the upstream's so nested
        was refused (or the message names no request)."""
        errors = exc.errors(include_url=False)
        text = errors[0].get("input") if len(errors) == 1 and errors[0].get("type") == "json_invalid" else None
        if not isinstance(text, str) or not body_too_deep(text, UPSTREAM_MAX_DEPTH):
            return exc
        data = text.encode("utf-8", "surrogatepass")
        head, tail = data[:_ID_ZONE], data[-_ID_ZONE:]
        detail = too_deep_detail(f"upstream {self._upstream!r}")
        log.warning("%s; skipped", detail)
        message_id = top_level_id(head, tail)
        if message_id is None:
            return None
        if is_upstream_request(head):
            if self._raw is not None:
                await self._raw.refuse(message_id, f"Bastion refuses JSON nested that deep: {detail}")
            return None
        error = types.ErrorData(code=UpstreamProtocolError.jsonrpc_code, message=detail)
        return SessionMessage(types.JSONRPCError(jsonrpc="2.0", id=message_id, error=error))

    def _worded(self, item: SessionMessage) -> SessionMessage:
        """The SDK's streamable HTTP client answers a request whose reply its parser gave up on
        with a parse error of its own wording: one for a reply nested too deep names the limit."""
        message = item.message
        assert isinstance(message, types.JSONRPCError)
        if message.error.code != types.PARSE_ERROR or _PARSER_GAVE_UP not in message.error.message:
            return item
        error = types.ErrorData(code=UpstreamProtocolError.jsonrpc_code, message=too_deep_detail(f"upstream {self._upstream!r}"))
        return SessionMessage(types.JSONRPCError(jsonrpc="2.0", id=message.id, error=error))

    async def aclose(self) -> None:
        self._closed.set()
        if self._raw is not None:
            self._raw.close()
        await self._inner.aclose()

    def __aiter__(self) -> _Tapped:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _Tapped:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
