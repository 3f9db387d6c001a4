"""Attack class: OpenAPI documents that are malformed, or shaped to make Bastion fetch, expand or send
what it should not. Outside testers feed Bastion real-world documents, and some are broken: a value
of the wrong type where an object or a list belongs (registering the upstream was a 500), a YAML key
that is a number or a date, a `$ref` to another host (never fetched: that would be SSRF), a reference
cycle. Each is refused as an unusable document (422, problem+json) naming where it is wrong, or read
as well as it can be; never a 500. A header parameter the document declares must not let a caller
replace the upstream's credentials or the request's framing (Host, Content-Length...)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.harness import Running, serve, serve_asgi, settings_for
from tests.rest.test_upstreams_api import assert_problem

pytestmark = pytest.mark.anyio


def _document(operation: dict[str, Any], **top: Any) -> dict[str, Any]:
    get = {"operationId": "getThing", "responses": {"200": {"description": "ok"}}, **operation}
    return {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/things/{id}": {"get": get}}, **top}


@pytest.fixture
async def api() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A REST API on loopback that records every request it receives (and answers them all)."""
    seen: list[dict[str, Any]] = []

    async def anything(request: Request) -> JSONResponse:
        seen.append({"path": request.url.path, "headers": dict(request.headers)})
        return JSONResponse({"ok": True})

    async with serve_asgi(Starlette(routes=[Route("/{path:path}", anything)])) as base:
        yield base, seen


async def _register(gateway: Running, spec: Any, base: str = "http://127.0.0.1:9", **extra: Any) -> Any:
    body = {"name": "api", "transport": "openapi", "spec": spec, "base_url": base, **extra}
    return await gateway.api.post("/api/v1/upstreams", json=body)


async def _served(gateway: Running, spec: Any, base: str = "http://127.0.0.1:9", **extra: Any) -> None:
    """`spec` registered as upstream `api`, behind virtual server `vs`."""
    response = await _register(gateway, spec, base, **extra)
    assert response.status_code == 201, response.text
    await gateway.create_server({"name": "vs", "upstreams": ["api"]})


MALFORMED = {
    "responses-a-number": ({"responses": 5}, "responses"),
    "responses-a-list": ({"responses": ["200"]}, "responses"),
    "a-response-a-number": ({"responses": {"200": 5}}, "200"),
    "tags-a-number": ({"tags": 5}, "tags"),
    "parameters-a-boolean": ({"parameters": True}, "parameters"),
    "content-a-list": ({"requestBody": {"content": {"application/json": []}}}, "application/json"),
    "media-type-key-a-number": ({"requestBody": {"content": {"5": {"schema": {}}}}, "responses": {}}, None),
    "required-nested-list": (
        {"requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "properties": {"a": {}}, "required": [["a"]]}}}}},
        "required",
    ),
    "required-a-number": (
        {"requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "properties": {"a": {}}, "required": 5}}}}},
        "required",
    ),
}


@pytest.mark.parametrize(("operation", "named"), MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_operation_is_refused_naming_where_not_a_500(gateway: Running, operation: dict[str, Any], named: str | None) -> None:
    response = await _register(gateway, _document(operation))
    if named is None:  # odd but harmless: read as well as it can be
        assert response.status_code == 201, response.text
        return
    body = assert_problem(response, 422)
    assert body["title"] == "Unusable OpenAPI document"
    assert "GET /things/{id}" in body["detail"] and named in body["detail"], body["detail"]
    assert (await gateway.api.get("/api/v1/upstreams/api")).status_code == 404


TOP_LEVEL = {
    "server-variables-a-list": ({"servers": [{"url": "http://{host}/", "variables": []}]}, None),
    "server-a-string": ({"servers": ["http://127.0.0.1:9"]}, None),
    "schemes-a-number": ({"swagger": "2.0", "openapi": None, "schemes": 5, "host": "127.0.0.1:9"}, None),
    "paths-a-list": ({"paths": []}, "paths"),
    "components-a-list": ({"components": [], "paths": {"/a": {"get": {"parameters": [{"$ref": "#/components/parameters/P"}]}}}}, "#/components/parameters/P"),
}


@pytest.mark.parametrize(("top", "named"), TOP_LEVEL.values(), ids=TOP_LEVEL.keys())
async def test_malformed_top_level_fields_are_refused_or_ignored_never_a_500(gateway: Running, top: dict[str, Any], named: str | None) -> None:
    spec = {k: v for k, v in {**_document({}), **top}.items() if v is not None}
    response = await _register(gateway, spec, base="")
    if named is None:
        assert response.status_code in (201, 400), response.text  # without a usable server, a clear 400
        assert response.status_code == 201 or "base_url" in response.json()["detail"]
        return
    body = assert_problem(response, 422)
    assert named in body["detail"], body["detail"]


YAML_KEYS = """openapi: 3.0.3
info: {title: t, version: '1'}
paths:
  /things:
    get:
      operationId: listThings
      responses:
        KEY:
          description: ok
          content:
            application/json:
              schema: {type: object}
"""


@pytest.mark.parametrize("key", ["200", "200.0", "2.5e2", "2024-01-01", "2XX", "default", "true"])
async def test_a_yaml_response_key_that_is_not_a_string_is_read(gateway: Running, key: str) -> None:
    # YAML reads `200:` as an integer, `200.0:` as a float and `2024-01-01:` as a date.
    response = await _register(gateway, YAML_KEYS.replace("KEY", key))
    assert response.status_code == 201, response.text
    assert response.json()["discovered"]["tools"] == ["api__listThings"]


async def test_an_external_reference_is_refused_and_never_fetched(gateway: Running, api: Any) -> None:
    base, seen = api
    for ref in (f"{base}/schemas.json#/Thing", "schemas.json#/Thing", "//127.0.0.1/x#/y"):
        for where in ("schema", "parameter", "path item"):
            if where == "schema":
                spec = _document({"responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": ref}}}}}})
            elif where == "parameter":
                spec = _document({"parameters": [{"$ref": ref}]})
            else:
                spec = {**_document({}), "paths": {"/things": {"$ref": ref}}}
            body = assert_problem(await _register(gateway, spec, base=base), 422)
            assert "only local references" in body["detail"], body["detail"]
    assert seen == []


async def test_a_reference_cycle_is_refused_and_an_expansion_bomb_defused(gateway: Running) -> None:
    cycle = _document(
        {"responses": {"200": {"$ref": "#/components/responses/A"}}},
        components={"responses": {"A": {"$ref": "#/components/responses/B"}, "B": {"$ref": "#/components/responses/A"}}},
    )
    body = assert_problem(await _register(gateway, cycle), 422)
    assert "reference chain" in body["detail"]
    schemas: dict[str, Any] = {"S0": {"type": "string"}}
    for i in range(1, 40):
        schemas[f"S{i}"] = {"type": "object", "properties": {"a": {"$ref": f"#/components/schemas/S{i - 1}"}, "b": {"$ref": f"#/components/schemas/S{i - 1}"}}}
    bomb = _document(
        {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/S39"}}}}},
        components={"schemas": schemas},
    )
    # Inlined in full it would be 2^39 nodes: only three references deep, the rest named.
    await _served(gateway, bomb)
    async with gateway.client("vs") as client:
        tool = next(t for t in (await client.list_tools()).tools if t.name == "api__getThing")
    shown = json.dumps(tool.input_schema)
    assert "(S36: not described here)" in shown and len(shown) < 5000


async def test_a_document_that_is_neither_json_nor_yaml_at_its_url_is_a_clear_refusal(gateway: Running) -> None:
    async def garbage(_request: Request) -> JSONResponse:
        return JSONResponse(["not", "a", "document"])

    async with serve_asgi(Starlette(routes=[Route("/openapi.json", garbage)])) as base:
        response = await gateway.api.post("/api/v1/upstreams", json={"name": "api", "transport": "openapi", "spec_url": f"{base}/openapi.json"})
    body = assert_problem(response, 422)
    assert "not an OpenAPI document" in body["detail"]


HEADER_PARAMS = ["Authorization", "X-Api-Key", "x-api-key", "Host", "Content-Length", "Transfer-Encoding", "Content-Type", "Accept", "Cookie"]


async def test_a_header_parameter_cannot_replace_credentials_or_framing(gateway: Running, api: Any) -> None:
    base, seen = api
    parameters = [{"name": name, "in": "header", "schema": {"type": "string"}} for name in HEADER_PARAMS]
    parameters += [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                   {"name": "X-Trace", "in": "header", "schema": {"type": "string"}}]
    auth = {"type": "api_key", "header": "X-Api-Key", "value": "the-real-key"}
    await _served(gateway, _document({"parameters": parameters}), base=base, auth=auth)
    async with gateway.client("vs") as client:
        tool = next(t for t in (await client.list_tools()).tools if t.name == "api__getThing")
        # Only what the caller may set is offered; the rest is the request's own or the operator's.
        assert set(tool.input_schema["properties"]) == {"id", "X-Trace"}
        arguments = {"id": "1", "X-Trace": "t-1", **{name: "evil" for name in HEADER_PARAMS}}
        result = await client.call_tool("api__getThing", arguments)
    assert result.is_error is not True
    headers = seen[-1]["headers"]
    assert headers["x-api-key"] == "the-real-key" and headers["x-trace"] == "t-1"
    assert headers["host"].startswith("127.0.0.1") and "evil" not in str(headers)


async def test_a_header_parameter_whose_name_is_no_http_token_is_left_out(gateway: Running, api: Any) -> None:
    base, seen = api
    parameters = [{"name": "Bad Name", "in": "header", "schema": {"type": "string"}},
                  {"name": "Clé", "in": "header", "schema": {"type": "string"}},
                  {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
    await _served(gateway, _document({"parameters": parameters}), base=base)
    async with gateway.client("vs") as client:
        result = await client.call_tool("api__getThing", {"id": "1", "Bad Name": "x", "Clé": "y"})
    assert result.is_error is not True
    assert seen[-1]["path"] == "/things/1"


def _nested(depth: int) -> str:
    """A document whose body schema nests arrays `depth` deep, as JSON text (json.dumps recurses)."""
    marker = {"$": "SCHEMA"}
    text = json.dumps(_document({"requestBody": {"content": {"application/json": {"schema": marker}}}}))
    return text.replace(json.dumps(marker), '{"type": "array", "items": ' * depth + '{"type": "string"}' + "}" * depth)


@pytest.mark.parametrize("depth", [300, 900, 5000])
async def test_a_document_nested_too_deeply_is_refused_not_a_500(gateway: Running, depth: int) -> None:
    # As text (inline or at a URL) it is not held to the request body's nesting limit.
    async def document(_request: Request) -> Response:
        return Response(_nested(depth), media_type="application/json")

    async with serve_asgi(Starlette(routes=[Route("/openapi.json", document)])) as base:
        at_url = await gateway.api.post("/api/v1/upstreams", json={"name": "api", "transport": "openapi", "spec_url": f"{base}/openapi.json"})
    assert "nests deeper than 64 levels" in assert_problem(at_url, 422)["detail"]
    inline = await _register(gateway, _nested(depth))
    assert "nests deeper than 64 levels" in assert_problem(inline, 400)["detail"]


async def test_schemas_that_nest_deeper_through_references_are_cut(gateway: Running) -> None:
    # Each reference nests a few levels more: the inlined schema would be hundreds of levels deep.
    schemas: dict[str, Any] = {"S0": {"type": "string"}}
    for i in range(1, 60):
        inner = {"type": "object", "properties": {"b": {"$ref": f"#/components/schemas/S{i - 1}"}}}
        schemas[f"S{i}"] = {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "array", "items": inner}}}}
    spec = _document(
        {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/S59"}}}},
         "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/S59"}}}}}},
        components={"schemas": schemas},
    )
    await _served(gateway, spec)
    async with gateway.client("vs") as client:
        tool = next(t for t in (await client.list_tools()).tools if t.name == "api__getThing")
    assert "(nested too deeply)" in json.dumps(tool.input_schema)


async def test_more_operations_than_an_upstream_may_list_are_refused_unless_selected(tmp_path: Path) -> None:
    # 20,000 operations in a 1.8 MB document took 20 s to register, as 20,000 tools; an MCP upstream
    # may list no more than BASTION_UPSTREAM_MAX_ITEMS.
    paths = {f"/things/{i}": {"get": {"operationId": f"get{i}", "tags": ["few" if i < 5 else "many"],
                                      "responses": {"200": {"description": "ok"}}}} for i in range(30)}
    spec = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": paths}
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", upstream_max_items=20)) as gateway:
        body = assert_problem(await _register(gateway, spec), 422)
        assert "more than 20 operations" in body["detail"] and "'include'" in body["detail"]
        selected = await _register(gateway, spec, include={"tags": ["few"]})
        assert selected.status_code == 201, selected.text
        assert len(selected.json()["discovered"]["tools"]) == 5
