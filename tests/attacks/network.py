"""A small network for the outbound attack tests, all on loopback: 127.0.0.2 plays the internet (the
only address the gateway's SSRF rules allow) and 127.0.0.1 the internal network an attacker aims at.

`internal()` serves a recorder there that answers everything like a friendly MCP server or token
endpoint would, so a request that reaches it would be relayed; tests assert it saw nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.harness import Running, serve, serve_asgi, settings_for
from tests.upstreams.fixture_server import build_server

PUBLIC = "127.0.0.2"
INTERNAL = "127.0.0.1"
SECRET = "INTERNAL-ONLY-7d1c"


@dataclass
class Recorder:
    url: str = ""
    hits: list[dict[str, Any]] = field(default_factory=list)


def recorder_app(recorder: Recorder) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        recorder.hits.append({"path": request.url.path, "headers": dict(request.headers)})
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "result": {"content": [{"type": "text", "text": SECRET}], "structuredContent": {"result": SECRET}},
            "access_token": SECRET,
            "token_type": "bearer",
        }
        await JSONResponse(body)(scope, receive, send)

    return app


@asynccontextmanager
async def internal() -> AsyncIterator[Recorder]:
    recorder = Recorder()
    async with serve_asgi(recorder_app(recorder), host=INTERNAL) as url:
        recorder.url = url
        yield recorder


Wrap = Callable[[ASGIApp], ASGIApp]


@asynccontextmanager
async def public_upstream(
    wrap: Wrap | None = None, stateless: bool = True, json_response: bool = False
) -> AsyncIterator[str]:
    """The fixture MCP server (both eras) on the "internet", optionally behind `wrap`; yields its MCP URL."""
    app: ASGIApp = build_server().streamable_http_app(
        streamable_http_path="/mcp", stateless_http=stateless, json_response=json_response, host=PUBLIC
    )
    async with serve_asgi(wrap(app) if wrap is not None else app, host=PUBLIC, lifespan="on") as url:
        yield f"{url}/mcp"


def answering(decide: Callable[[Scope], Awaitable[Response | None]]) -> Wrap:
    """Middleware: `decide` may answer a request itself (a redirect, a huge body...); else the app does."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                answer = await decide(scope)
                if answer is not None:
                    await answer(scope, receive, send)
                    return
            await app(scope, receive, send)

        return wrapped

    return wrap


def header(scope: Scope, name: str) -> str | None:
    for key, value in scope["headers"]:
        if key.decode("latin-1").lower() == name:
            return str(value.decode("latin-1"))
    return None


@asynccontextmanager
async def strict_gateway(tmp_path: Path, **overrides: Any) -> AsyncIterator[Running]:
    """Bastion on its production rules, with only the "internet" address allowed."""
    settings = settings_for(
        f"sqlite+aiosqlite:///{tmp_path}/b.db",
        allow_private_upstreams=False,
        upstream_allowed_networks=(f"{PUBLIC}/32",),
        **overrides,
    )
    async with serve(settings) as gateway:
        yield gateway
