"""Attack class: read-only values an OpenAPI tool offers or sends where the document says the API
manages them. `readOnly` holds wherever a property sits: in a query, header or cookie parameter whose
value is an object (form, deepObject), in the values `additionalProperties` and `patternProperties`
describe; and `writeOnly` likewise leaves the output. A value sent anyway is dropped, not refused (as
for a body's properties). Each call goes through a real gateway and MCP client to an API on loopback,
checked by what that API received."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

import pytest

from tests.e2e.test_openapi_real_documents import api  # noqa: F401 (the recording API, a fixture)
from tests.harness import Running

pytestmark = pytest.mark.anyio

RO = {"readOnly": True}
ITEM = {"type": "object", "properties": {"id": {"type": "integer", **RO}, "label": {"type": "string"}}}
FILTER = {
    "type": "object",
    "properties": {
        "id": {"type": "integer", **RO},
        "q": {"type": "string"},
        "range": {"type": "object", "properties": {"gte": {"type": "integer"}, "computed": {"type": "integer", **RO}}},
    },
}
OK = {"200": {"description": "ok"}}


def _param(name: str, where: str, style: str, schema: Any = None) -> dict[str, Any]:
    return {"name": name, "in": where, "style": style, "explode": True, "schema": schema or {"$ref": "#/components/schemas/Filter"}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _document() -> dict[str, Any]:
    def named(**rest: Any) -> dict[str, Any]:
        return {"type": "object", "properties": {"name": {"type": "string"}, **rest}}

    labels = named(labels={"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Item"}})
    stamped = named(stamps={"type": "object", "properties": {"note": {}}, "additionalProperties": {"type": "string", **RO}})
    patterned = named(meta={
        "type": "object", "properties": {"note": {}},
        "patternProperties": {"^x-": {"type": "string", **RO}, "^item_": {"$ref": "#/components/schemas/Item"}},
    })
    secrets = {"type": "object", "additionalProperties": {"type": "object", "properties": {"v": {}, "token": {"writeOnly": True}}}}
    answer = {"200": {"description": "ok", "content": {"application/json": {"schema": secrets}}}}
    return {
        "openapi": "3.1.0", "info": {"title": "access", "version": "1"},
        "paths": {
            "/form": {"get": {"operationId": "form", "parameters": [_param("filter", "query", "form")], "responses": OK}},
            "/deep": {"get": {"operationId": "deep", "parameters": [_param("filter", "query", "deepObject")], "responses": OK}},
            "/header": {"get": {"operationId": "header", "parameters": [_param("X-Filter", "header", "simple")], "responses": OK}},
            "/cookie": {"get": {"operationId": "cookie", "parameters": [_param("filter", "cookie", "form")], "responses": OK}},
            "/labels": {"post": {"operationId": "labels", "requestBody": _body(labels), "responses": answer}},
            "/stamped": {"post": {"operationId": "stamped", "requestBody": _body(stamped), "responses": OK}},
            "/patterned": {"post": {"operationId": "patterned", "requestBody": _body(patterned), "responses": OK}},
        },
        "components": {"schemas": {"Filter": FILTER, "Item": ITEM}},
    }


async def _tools(gateway: Running, base: str) -> dict[str, Any]:
    await gateway.register({"name": "acc", "transport": "openapi", "spec": _document(), "base_url": base})
    await gateway.create_server({"name": "vs-acc", "upstreams": ["acc"]})
    async with gateway.client("vs-acc") as client:
        return {t.name: t for t in (await client.list_tools()).tools}


async def _call(gateway: Running, tool: str, arguments: dict[str, Any]) -> None:
    async with gateway.client("vs-acc", mode="2026-07-28") as client:
        result = await client.call_tool(f"acc__{tool}", arguments)
    assert result.is_error is not True, result.content


SENT_FILTER = {"id": 7, "q": "x", "range": {"gte": 2, "computed": 9}}


def _no_read_only_filter(schema: dict[str, Any]) -> None:
    assert set(schema["properties"]) == {"q", "range"}
    assert set(schema["properties"]["range"]["properties"]) == {"gte"}


async def test_an_object_query_parameter_neither_offers_nor_sends_read_only_properties(gateway: Running, api: Any) -> None:
    base, seen = api
    tools = await _tools(gateway, base)
    _no_read_only_filter(tools["acc__form"].input_schema["properties"]["filter"])
    _no_read_only_filter(tools["acc__deep"].input_schema["properties"]["filter"])
    await _call(gateway, "form", {"filter": {"id": 7, "q": "x"}})
    assert parse_qsl(seen[-1]["query"]) == [("q", "x")]


async def test_a_deep_object_is_sent_nested_without_its_read_only_properties(gateway: Running, api: Any) -> None:
    base, seen = api
    await _tools(gateway, base)
    await _call(gateway, "deep", {"filter": SENT_FILTER})
    assert parse_qsl(seen[-1]["query"]) == [("filter[q]", "x"), ("filter[range][gte]", "2")]


async def test_object_header_and_cookie_parameters_send_no_read_only_property(gateway: Running, api: Any) -> None:
    base, seen = api
    tools = await _tools(gateway, base)
    _no_read_only_filter(tools["acc__header"].input_schema["properties"]["X-Filter"])
    _no_read_only_filter(tools["acc__cookie"].input_schema["properties"]["filter"])
    await _call(gateway, "header", {"X-Filter": {"id": 7, "q": "x"}})
    assert seen[-1]["headers"]["x-filter"] == "q=x"
    await _call(gateway, "cookie", {"filter": {"id": 7, "q": "x"}})
    assert seen[-1]["headers"]["cookie"] == "q=x"


async def test_read_only_properties_of_additional_properties_are_neither_offered_nor_sent(gateway: Running, api: Any) -> None:
    base, seen = api
    tools = await _tools(gateway, base)
    extra = tools["acc__labels"].input_schema["properties"]["labels"]["additionalProperties"]
    assert set(extra["properties"]) == {"label"}
    await _call(gateway, "labels", {"name": "n", "labels": {"a": {"id": 1, "label": "A"}, "b": {"label": "B"}}})
    assert json.loads(seen[-1]["body"]) == {"name": "n", "labels": {"a": {"label": "A"}, "b": {"label": "B"}}}
    # Write-only properties of what the API answers under keys it does not name leave the output.
    output = tools["acc__labels"].output_schema["anyOf"][0]  # type: ignore[index]
    assert set(output["additionalProperties"]["properties"]) == {"v"}


async def test_read_only_additional_and_pattern_properties_are_dropped_whole(gateway: Running, api: Any) -> None:
    base, seen = api
    tools = await _tools(gateway, base)
    assert "additionalProperties" not in tools["acc__stamped"].input_schema["properties"]["stamps"]
    await _call(gateway, "stamped", {"name": "n", "stamps": {"note": 1, "created_at": "2026-01-01"}})
    assert json.loads(seen[-1]["body"]) == {"name": "n", "stamps": {"note": 1}}
    patterns = tools["acc__patterned"].input_schema["properties"]["meta"]["patternProperties"]
    assert set(patterns) == {"^item_"} and set(patterns["^item_"]["properties"]) == {"label"}
    meta = {"note": 1, "x-seen": "s", "item_1": {"id": 3, "label": "L"}, "other": {"id": 4}}
    await _call(gateway, "patterned", {"name": "n", "meta": meta})
    assert json.loads(seen[-1]["body"]) == {"name": "n", "meta": {"note": 1, "item_1": {"label": "L"}, "other": {"id": 4}}}
