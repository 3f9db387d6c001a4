"""Attack class: digits `int` cannot read, in what other parties send. `str.isdigit` is true of `²`
(and of other Unicode digits), which `int` refuses, and `int` refuses more than 4,300 digits; code
that checked `isdigit()` and then called `int()` raised ValueError on:
- an OpenAPI document's `$ref` whose list index is `²` (registering the upstream was a 500);
- an upstream's SSE `retry:` field of 5,000 digits (the call failed as an unexpected error);
- an MCP Registry entry whose version has a part such as `²` (adding the registry was a 500).
Each is now read as what it is: a reference to nothing (the document is refused as one pointing
past the end of a list is) or a retry hint that is not one (ignored)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.attacks.network import public_upstream, strict_gateway
from tests.attacks.test_registry_fields import FakeRegistry, _set
from tests.harness import Running, serve_asgi

pytestmark = pytest.mark.anyio


def _document(index: str) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "refs", "version": "1"},
        "paths": {
            "/items": {
                "get": {
                    "operationId": "listItems",
                    "parameters": [
                        {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                        {"$ref": f"#/paths/~1items/get/parameters/{index}"},
                    ],
                    "responses": {"200": {"description": "the items"}},
                }
            }
        },
    }


@pytest.mark.parametrize("index", ["\u00b2", "\u0661", "9" * 5000], ids=["superscript-two", "arabic-one", "5000-digits"])
async def test_an_openapi_reference_whose_index_is_not_ascii_digits_points_at_nothing(gateway: Running, index: str) -> None:
    """Refused as a reference past the end of the list is (the same answer, naming the reference)."""
    body = {"name": "refs", "transport": "openapi", "spec": _document(index), "base_url": "http://127.0.0.1:9/v1"}
    response = await gateway.api.post("/api/v1/upstreams", json=body)
    past_the_end = await gateway.api.post("/api/v1/upstreams", json={**body, "spec": _document("5")})
    assert response.status_code == past_the_end.status_code != 500, response.text
    assert "points at nothing" in response.json()["detail"] and "points at nothing" in past_the_end.json()["detail"]


async def test_an_openapi_reference_by_an_ascii_index_still_resolves(gateway: Running) -> None:
    body = {"name": "refs", "transport": "openapi", "spec": _document("0"), "base_url": "http://127.0.0.1:9/v1"}
    response = await gateway.api.post("/api/v1/upstreams", json=body)
    assert response.status_code == 201, response.text


def retry_hint(value: bytes) -> Any:
    """Middleware: the upstream answers tools/call as an SSE event led by `retry: <value>`."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope["method"] != "POST":
                return await app(scope, receive, send)
            request = [await receive()]
            while request[-1].get("more_body"):
                request.append(await receive())

            async def replay() -> Message:
                return request.pop(0) if request else await receive()

            if b'"tools/call"' not in b"".join(m.get("body", b"") for m in request):
                return await app(scope, replay, send)
            body, events = b"", False

            async def sending(message: Message) -> None:
                nonlocal body, events
                if message["type"] == "http.response.start":
                    kept = [(k, v) for k, v in message["headers"] if k.lower() not in (b"content-length", b"content-type")]
                    events = any(k.lower() == b"content-type" and v.startswith(b"text/event-stream") for k, v in message["headers"])
                    await send({**message, "headers": [*kept, (b"content-type", b"text/event-stream")]})
                elif message["type"] == "http.response.body" and events:  # already SSE: the hint goes first
                    await send({**message, "body": b"retry: " + value + b"\n" + message.get("body", b"")} if not body else message)
                    body = b"sent"
                elif message["type"] == "http.response.body":  # JSON: made one SSE event
                    body += message.get("body", b"")
                    if not message.get("more_body"):
                        await send({"type": "http.response.body", "body": b"retry: " + value + b"\ndata: " + body + b"\n\n"})

            await app(scope, replay, sending)

        return wrapped

    return wrap


@pytest.mark.parametrize("value", ["9" * 5000, "\u00b2"], ids=["5000-digits", "superscript-two"])
@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_an_sse_retry_hint_that_is_not_a_number_is_ignored(tmp_path: Path, value: str, mode: str) -> None:
    """A caller's own session with a 2025-11-25 upstream reads `retry:` (to resume a stream the
    upstream cuts short), whichever era the caller speaks."""
    upstream = public_upstream(retry_hint(value.encode()), stateless=False)
    async with upstream as url, strict_gateway(tmp_path) as gateway:
        await gateway.register({"name": "pub", "transport": "streamable-http", "url": url, "protocol": "2025-11-25"})
        await gateway.create_server({"name": "vs", "upstreams": ["pub"], "visibility": "public"})
        async with gateway.client("vs", mode=mode) as client:
            with anyio.fail_after(30):
                result = await client.call_tool("pub__echo", {"text": "after the hint"})
    assert result.is_error is not True and "after the hint" in str(result.content), result


@pytest.mark.parametrize("version", ["1.\u00b2", "2.\u0661.0"], ids=["superscript-two", "arabic-one"])
async def test_a_registry_version_with_digits_int_cannot_read_is_listed_as_text(gateway: Running, version: str) -> None:
    registry = FakeRegistry()
    registry.change = _set("server.version", version)
    async with serve_asgi(registry.app()) as url:
        added = await gateway.api.post("/api/v1/registries", json={"name": "odd", "url": url})
        assert added.status_code == 201, added.text
        found = await gateway.api.get("/api/v1/registries/search", params={"source": "odd"})
    assert found.status_code == 200, found.text
    assert version in [item.get("version") for item in found.json()["items"]], found.text
