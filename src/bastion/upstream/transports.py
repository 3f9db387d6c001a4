"""Open the SDK transport for an upstream spec, with a tap that tells when it closes.

stdio children get a pipe for stderr whose lines go to Bastion's log at DEBUG (an upstream may print
its own secrets there), prefixed by upstream name; the last few are kept so a failure is reported as
one warning that ends with them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, TextIO

import anyio
import httpx2
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from bastion.core.models import UpstreamSpec
from bastion.upstream.raw import RawRequests
from bastion.upstream.stdio import stdio_transport

log = logging.getLogger("bastion.upstream")


_TAIL_LINES = 5
_TAIL_CHARS = 400
_tails: dict[str, deque[str]] = {}


def stderr_tail(upstream: str) -> str:
    """The last lines a stdio upstream wrote to stderr, joined and shortened ("" if none)."""
    text = " | ".join(_tails.get(upstream, ()))
    return text if len(text) <= _TAIL_CHARS else "…" + text[-_TAIL_CHARS:]


_LINE_CHARS = 4096
"""A stderr line longer than this is logged cut short: a child that writes megabytes without a
newline must not grow Bastion's memory (or its log) by as much."""


def _stderr_lines(stream: TextIO) -> Iterator[str]:
    """The child's stderr lines, each at most _LINE_CHARS, the rest of a longer one skipped."""
    while line := stream.readline(_LINE_CHARS):
        if line.endswith("\n"):
            yield line
            continue
        skipped = 0
        while (more := stream.readline(_LINE_CHARS)) and not more.endswith("\n"):
            skipped += len(more)
        skipped += len(more.rstrip("\n"))
        yield f"{line}… ({skipped} more characters)" if skipped else line


def _stderr_pump(upstream: str, read_fd: int) -> None:
    tail = _tails[upstream] = deque(maxlen=_TAIL_LINES)
    with open(read_fd, encoding="utf-8", errors="replace") as stream:
        for line in _stderr_lines(stream):
            if line.strip():
                tail.append(line.strip()[:200])
            log.debug("[%s] %s", upstream, line.rstrip())


@asynccontextmanager
async def _stderr_to_log(upstream: str) -> AsyncIterator[Any]:
    """A writable file for a child's stderr; a thread copies its lines into the log."""
    read_fd, write_fd = os.pipe()
    thread = threading.Thread(target=_stderr_pump, args=(upstream, read_fd), name=f"stderr-{upstream}", daemon=True)
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
            errlog = await stack.enter_async_context(_stderr_to_log(spec.name))
            params = StdioServerParameters(command=spec.command or "", args=list(spec.args), env=dict(spec.env) or None)
            streams = stdio_transport(params, errlog, upstream=spec.name, max_message_bytes=max_message_bytes)
        elif spec.transport == "sse":
            extra = {"httpx_client_factory": sse_client_factory} if sse_client_factory is not None else {}
            streams = sse_client(spec.url or "", headers=dict(spec.headers), sse_read_timeout=24 * 3600, auth=auth, **extra)
        else:
            # Bastion's client caps each event itself (BASTION_UPSTREAM_MAX_MESSAGE_BYTES), with a clear error.
            streams = streamable_http_client(spec.url or "", http_client=http_client, max_sse_event_size=None)
        read, write = await stack.enter_async_context(streams)
        tapped = _Tapped(read, closed, raw)
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

    def __init__(self, inner: Any, closed: anyio.Event, raw: RawRequests | None = None) -> None:
        self._inner, self._closed, self._raw = inner, closed, raw

    async def receive(self) -> Any:
        try:
            while True:
                item = await self._inner.receive()
                if self._raw is None or not self._raw.route(item):
                    return item
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
            self._closed.set()
            if self._raw is not None:
                self._raw.close()
            raise

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
