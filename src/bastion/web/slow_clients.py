"""Deadlines for slow clients (slowloris): uvicorn bounds only the idle time between requests, so a
client could hold a connection forever by sending its headers or its body a byte at a time.

`bounded_http` is uvicorn's httptools protocol with two more timers: the request line and headers
must arrive within `header_timeout` (from the connection's start, then from each next request's
first byte), and the body within `body_timeout` after the headers. Past either, the connection is
closed (the application sees a disconnect). The request line and headers are also bounded in size
(httptools buffers them whole, without limit): past `max_header_bytes` the answer is 431 and the
connection is closed. This subclasses uvicorn's protocol class, its documented `http=` extension
point; the hooks used are the parser callbacks it already defines.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEADER_BYTES = 64 * 1024
_TOO_LARGE_BODY = b"Request header fields too large"
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TOO_LARGE_BODY), _TOO_LARGE_BODY)
)


class _BoundedHttpTools(HttpToolsProtocol):
    header_timeout = 10.0
    body_timeout = 30.0
    max_header_bytes = MAX_HEADER_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._in_headers = True
        self._header_bytes = 0
        self._boundaries = 0
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # read and dropped until the header deadline closes the connection
        boundaries = self._boundaries
        super().data_received(data)
        # A chunk that neither ends the headers nor the message, fed while the headers are still
        # incomplete, is all header bytes (the parser keeps them).
        if boundaries != self._boundaries or not self._in_headers or self.transport.is_closing():
            return
        self._header_bytes += len(data)
        if self._header_bytes > self.max_header_bytes:
            # Answer, then stop parsing but keep reading: closing with unread input would reset the
            # connection and lose the answer. The header deadline, still armed, closes it.
            self._refused = True
            self.transport.write(_TOO_LARGE)
            if self.transport.can_write_eof():
                self.transport.write_eof()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.header_timeout)

    def on_headers_complete(self) -> None:
        self._in_headers, self._header_bytes = False, 0
        self._boundaries += 1
        self._arm(self.body_timeout)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_headers, self._header_bytes = True, 0
        self._boundaries += 1
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def bounded_http(header_timeout: float, body_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's `http=` protocol class with these read deadlines, in seconds."""
    return type("BoundedHttpTools", (_BoundedHttpTools,), {"header_timeout": header_timeout, "body_timeout": body_timeout})
