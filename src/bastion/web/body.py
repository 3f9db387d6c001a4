"""Bodies on the hand-written fast paths (MCP and the REST facade's tool calls): a request body read
once from ASGI `receive` within a size limit, and a JSON reply written with two `send`s."""

from __future__ import annotations

from starlette.types import Receive, Send

TOO_LARGE = b"\0too-large"
"""What `read_body` returns for a body past its limit (compared by identity)."""


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body; None if the client went away; `TOO_LARGE` past `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return TOO_LARGE
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """Answer with `body`, already encoded JSON, and `headers` after the content headers."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})
