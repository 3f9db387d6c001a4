"""Attack class: an upstream floods the gateway. One message (a JSON body, or one SSE event that
never ends) larger than BASTION_UPSTREAM_MAX_MESSAGE_BYTES is refused while it is read, never
buffered whole, on the lean 2026-07-28 path and on the SDK's sessions alike; the caller gets a
JSON-RPC error that says why, and the upstream stays usable for normal answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from mcp import MCPError
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Scope

from tests.attacks.network import answering, header, public_upstream, strict_gateway

pytestmark = pytest.mark.anyio

LIMIT = 256 * 1024


async def call_echo(gateway_client: object, size: int) -> str:
    from mcp import Client

    assert isinstance(gateway_client, Client)
    with anyio.fail_after(30):
        try:
            result = await gateway_client.call_tool("pub__echo", {"text": "x" * size})
            return f"ok {len(str(result.content))}"
        except MCPError as exc:
            return exc.message


async def test_a_json_answer_over_the_message_limit_is_refused(tmp_path: Path) -> None:
    async with public_upstream() as url, strict_gateway(tmp_path, upstream_max_message_bytes=LIMIT) as gateway:
        await gateway.register({"name": "pub", "transport": "streamable-http", "url": url})
        await gateway.create_server({"name": "vs", "upstreams": ["pub"], "visibility": "public"})
        async with gateway.client("vs", mode="2026-07-28") as client:
            refused = await call_echo(client, LIMIT)
            fine = await call_echo(client, 1000)
    assert "larger than" in refused and str(LIMIT) in refused, refused
    assert fine.startswith("ok"), fine


async def test_an_sse_event_that_never_ends_is_cut_off(tmp_path: Path) -> None:
    async def flood(scope: Scope) -> Response | None:
        if scope["method"] != "POST" or header(scope, "mcp-method") != "tools/call":
            return None

        async def body() -> AsyncIterator[bytes]:
            line = b"data: " + b"x" * 16 * 1024 + b"\n"  # data lines, and never the blank line ending the event
            for _ in range(4 * LIMIT // len(line)):
                yield line
            await anyio.Event().wait()  # then hold the stream open

        return StreamingResponse(body(), media_type="text/event-stream")

    async with public_upstream(answering(flood)) as url, strict_gateway(tmp_path, upstream_max_message_bytes=LIMIT) as gateway:
        await gateway.register({"name": "pub", "transport": "streamable-http", "url": url})
        await gateway.create_server({"name": "vs", "upstreams": ["pub"], "visibility": "public"})
        async with gateway.client("vs", mode="2026-07-28") as client:
            refused = await call_echo(client, 10)
    assert "larger than" in refused, refused  # while the upstream still held the event open


@pytest.mark.parametrize("json_response", [True, False], ids=["json", "sse"])
async def test_a_legacy_session_answer_over_the_message_limit_is_refused(tmp_path: Path, json_response: bool) -> None:
    """A 2025-11-25 upstream (no server/discover) is carried by the SDK's transport: the same limit."""

    async def legacy_only(scope: Scope) -> Response | None:
        if scope["method"] == "POST" and header(scope, "mcp-method") == "server/discover":
            return JSONResponse({"jsonrpc": "2.0", "id": None, "error": {"code": -32601, "message": "no"}}, 404)
        return None

    upstream = public_upstream(answering(legacy_only), stateless=False, json_response=json_response)
    async with upstream as url, strict_gateway(tmp_path, upstream_max_message_bytes=LIMIT) as gateway:
        await gateway.register({"name": "pub", "transport": "streamable-http", "url": url})
        await gateway.create_server({"name": "vs", "upstreams": ["pub"], "visibility": "public"})
        assert gateway.bastion.pool.connection("pub").client.protocol_version == "2025-11-25"  # type: ignore[union-attr]
        async with gateway.client("vs", mode="legacy") as client:
            refused = await call_echo(client, LIMIT)
            fine = await call_echo(client, 1000)
    assert "larger than" in refused and str(LIMIT) in refused, refused
    assert fine.startswith("ok"), fine
