"""A loopback OAuth world for tests: a token endpoint (client credentials) and, on the same port, a
gate in front of a real MCP upstream that lets through only requests with a token it issued."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx2
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host", "content-length"}


@dataclass
class OAuthWorld:
    """Issues `tok-N` to `client_id`/`client_secret`; the gate forwards to `target` only with a live one."""

    target: str
    client_id: str
    client_secret: str
    expires_in: int | None = 3600
    live: set[str] = field(default_factory=set)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    refused: int = 0
    seen_authorization: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._http = httpx2.AsyncClient(timeout=httpx2.Timeout(60.0, read=None))

    def revoke_all(self) -> None:
        """As if every issued token expired at the upstream's authorization server."""
        self.live.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        handler = self._token if request.url.path == "/token" else self._gate
        await (await handler(request))(scope, receive, send)

    async def _token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        self.token_requests.append(form)
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return _json({"error": "invalid_client"}, 401)
        if form.get("grant_type") != "client_credentials":
            return _json({"error": "unsupported_grant_type"}, 400)
        token = f"tok-{next(self._ids)}"
        self.live.add(token)
        body: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return _json(body, 200)

    async def _gate(self, request: Request) -> Response:
        authorization = request.headers.get("authorization", "")
        self.seen_authorization.append(authorization)
        if authorization.removeprefix("Bearer ") not in self.live:
            self.refused += 1
            return _json({"error": "invalid_token"}, 401)
        headers = {k: v.strip() for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        url = self.target + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        upstream = await self._http.send(
            self._http.build_request(request.method, url, headers=headers, content=await request.body()), stream=True
        )
        out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}

        async def stream() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                await upstream.aclose()

        if upstream.headers.get("content-type", "").startswith("text/event-stream"):
            return StreamingResponse(stream(), status_code=upstream.status_code, headers=out_headers)
        content = await upstream.aread()
        await upstream.aclose()
        return Response(content, status_code=upstream.status_code, headers=out_headers)

    async def aclose(self) -> None:
        await self._http.aclose()


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json")
