"""A loopback reverse proxy that adds `Authorization: Bearer` to every request it forwards.

The conformance suite cannot send headers of its own; this stands between it and Bastion so the
suite exercises Bastion with authentication on, as every client must. Bodies stream both ways
(SSE responses and GET streams included).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host", "content-length"}


class AuthProxy:
    def __init__(self, target: str, token: str) -> None:
        self.target = target.rstrip("/")
        self.token = token
        self.http = httpx2.AsyncClient(timeout=httpx2.Timeout(60.0, read=None))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        # A proxy forwards field values without surrounding whitespace (RFC 9110 5.5), as httpx requires.
        headers = {k: v.strip() for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["authorization"] = f"Bearer {self.token}"
        url = self.target + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        body = await request.body()
        upstream = await self.http.send(
            self.http.build_request(request.method, url, headers=headers, content=body), stream=True
        )
        out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}

        async def stream() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                await upstream.aclose()

        if upstream.headers.get("content-type", "").startswith("text/event-stream"):
            response: Response = StreamingResponse(stream(), status_code=upstream.status_code, headers=out_headers)
        else:
            content = await upstream.aread()
            await upstream.aclose()
            response = Response(content, status_code=upstream.status_code, headers=out_headers)
        await response(scope, receive, send)
