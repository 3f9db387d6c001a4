"""A minimal HTTP/1.1 client for benchmarks: one keep-alive connection, requests written and responses
read by hand on asyncio streams. It does almost no work per byte, so a time measured with it is the
server's and the network's (time to last byte), not a general-purpose client's (httpx's per-request
machinery, or decoding JSON the benchmark does not need)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


class RawHttp:
    """One keep-alive connection; `post` sends a request and returns status, headers and the whole body."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, headers: dict[str, str]) -> None:
        self._reader, self._writer = reader, writer
        self._fixed = f"host: {host}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())

    @classmethod
    async def open(cls, base: str, headers: dict[str, str]) -> RawHttp:
        url = urlsplit(base)
        # A read buffer larger than any page, so the stream never pauses the socket mid-body.
        reader, writer = await asyncio.open_connection(url.hostname, url.port, limit=1 << 24)
        return cls(reader, writer, url.netloc, headers)

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head = f"POST {path} HTTP/1.1\r\n{self._fixed}{extra}content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        self._writer.write(head.encode("latin-1") + body)
        raw = await self._reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
        if "content-length" in fields:
            return status, fields, await self._reader.readexactly(int(fields["content-length"]))
        if fields.get("transfer-encoding") == "chunked":
            chunks: list[bytes] = []
            while size := int((await self._reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16):
                chunks.append(await self._reader.readexactly(size))
                await self._reader.readexactly(2)
            await self._reader.readuntil(b"\r\n")  # no trailers are sent
            return status, fields, b"".join(chunks)
        raise RuntimeError(f"a response this client cannot frame: {fields}")

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()


def next_cursor(body: bytes) -> str | None:
    """The `nextCursor` of a list result, found in the body's tail without decoding the page (the
    gateway writes it after the items); None on the last page."""
    tail = body[-1024:]
    at = tail.rfind(b'"nextCursor":"')
    if at < 0:
        return None
    start = at + len(b'"nextCursor":"')
    return tail[start : tail.index(b'"', start)].decode()
