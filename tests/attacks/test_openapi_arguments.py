"""Attack class: tool arguments of a REST (OpenAPI) upstream that would change which request is made.
A path parameter of `..` or `.` is removed by URL normalisation and reaches another path of the API
(`/v1/files/..` is `/v1`); a header parameter with CR/LF or non-ASCII characters cannot be sent. Each
is a tool error naming the parameter; the API never sees the request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.harness import Running, serve_asgi

pytestmark = pytest.mark.anyio

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "files", "version": "1"},
    "paths": {
        "/files/{name}": {
            "get": {
                "operationId": "getFile",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "X-Trace", "in": "header", "schema": {"type": "string"}},
                ],
                "responses": {"200": {"description": "the file"}},
            }
        }
    },
}


@pytest.fixture
async def files(gateway: Running) -> AsyncIterator[list[str]]:
    """A REST API on loopback behind the virtual server `vs`; yields the paths it was asked for."""
    reached: list[str] = []

    async def anything(request: Request) -> JSONResponse:
        reached.append(request.url.path)
        return JSONResponse({"path": request.url.path, "trace": request.headers.get("x-trace")})

    app = Starlette(routes=[Route("/{path:path}", anything)])
    async with serve_asgi(app) as base:
        await gateway.register({"name": "files", "transport": "openapi", "spec": DOCUMENT, "base_url": f"{base}/v1"})
        await gateway.create_server({"name": "vs", "upstreams": ["files"]})
        yield reached


async def _call(gateway: Running, arguments: dict[str, Any]) -> Any:
    async with gateway.client("vs", mode="2026-07-28") as client:
        return await client.call_tool("files__getFile", arguments)


async def test_an_ordinary_call_reaches_the_operations_path(gateway: Running, files: list[str]) -> None:
    result = await _call(gateway, {"name": "a b.txt", "X-Trace": "t-1"})
    assert result.is_error is not True
    assert files == ["/v1/files/a b.txt"]


@pytest.mark.parametrize("name", ["..", ".", ""])
async def test_a_dot_segment_path_parameter_is_refused(gateway: Running, files: list[str], name: str) -> None:
    result = await _call(gateway, {"name": name})
    assert result.is_error is True
    assert "'name'" in result.content[0].text
    assert files == []


@pytest.mark.parametrize("trace", ["v\r\nX-Injected: 1", "clé"], ids=["crlf", "non-ascii"])
async def test_a_header_parameter_that_cannot_be_sent_is_a_tool_error(gateway: Running, files: list[str], trace: str) -> None:
    result = await _call(gateway, {"name": "a", "X-Trace": trace})
    assert result.is_error is True
    assert "'X-Trace'" in result.content[0].text
    assert files == []


FILTERED: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "search", "version": "1"},
    "paths": {
        "/search": {
            "get": {
                "operationId": "search",
                "parameters": [
                    # form + explode: each of the object's keys is a query parameter of its own
                    {"name": "filter", "in": "query", "style": "form", "explode": True, "schema": {"type": "object"}},
                ],
                "responses": {"200": {"description": "found"}},
            }
        }
    },
}


async def test_an_exploded_object_cannot_send_a_query_key_beside_the_operators(gateway: Running) -> None:
    queries: list[list[tuple[str, str]]] = []

    async def anything(request: Request) -> JSONResponse:
        queries.append(list(request.query_params.multi_items()))
        return JSONResponse({})

    async with serve_asgi(Starlette(routes=[Route("/{path:path}", anything)])) as base:
        auth = {"type": "api_key_query", "name": "api_key", "value": "operator-key"}
        await gateway.register({"name": "search", "transport": "openapi", "spec": FILTERED, "base_url": base, "auth": auth})
        await gateway.create_server({"name": "vs-search", "upstreams": ["search"]})
        async with gateway.client("vs-search", mode="2026-07-28") as client:
            result = await client.call_tool("search__search", {"filter": {"api_key": "callers-key", "q": "x"}})
        await gateway.api.delete("/api/v1/upstreams/search", params={"force": "true"})
    assert result.is_error is not True, result.content
    assert [v for k, v in queries[0] if k == "api_key"] == ["operator-key"], queries
    assert ("q", "x") in queries[0]
