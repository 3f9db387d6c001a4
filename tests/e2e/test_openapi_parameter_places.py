"""Parameters as production documents declare them, each sent where it belongs: one name in the path
and in the query (and a third parameter already named like the second's argument), a query parameter
named `body` beside a body, a body that is a map, Stripe's deepObject lists and form bodies, and cookie parameters
beside a session cookie the operator set. Through a real gateway and MCP client to an API on loopback,
checked by what that API received."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

import pytest

from tests.e2e.test_openapi_real_documents import api  # noqa: F401 (the recording API, a fixture)
from tests.harness import Running

pytestmark = pytest.mark.anyio

TEXT = {"type": "string"}
OK = {"200": {"description": "ok"}}


def _param(name: str, where: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": where, "schema": TEXT, **extra}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _document() -> dict[str, Any]:
    tags = {"type": "object", "properties": {"name": TEXT}, "additionalProperties": TEXT}
    expand = {"name": "expand", "in": "query", "style": "deepObject", "explode": True, "schema": {"type": "array", "items": TEXT}}
    prefs = {"name": "prefs", "in": "cookie", "explode": True, "schema": {"type": "object"}}
    return {
        "openapi": "3.0.3", "info": {"title": "places", "version": "1"},
        "paths": {
            "/things/{id}": {"get": {
                "operationId": "getThing", "responses": OK,
                "parameters": [_param("query_id", "query"), _param("id", "path", required=True), _param("id", "query")],
            }},
            "/notes": {"post": {
                "operationId": "addNote", "responses": OK, "parameters": [_param("body", "query")],
                "requestBody": _body({"type": "array", "items": TEXT}),
            }},
            "/tags": {"put": {"operationId": "putTags", "requestBody": _body(tags), "responses": OK}},
            "/charges": {"get": {"operationId": "listCharges", "parameters": [expand], "responses": OK}},
            "/customers": {"post": {"operationId": "createCustomer", "requestBody": _stripe_form(), "responses": OK}},
            "/me": {"get": {
                "operationId": "me", "responses": OK,
                "parameters": [_param("session", "cookie"), _param("theme", "cookie"), prefs],
            }},
        },
    }


def _stripe_form() -> dict[str, Any]:
    """POST /v1/customers as Stripe's document describes it: a form body whose object and list fields are deepObject."""
    deep = {"explode": True, "style": "deepObject"}
    address = {"type": "object", "properties": {"city": TEXT, "line1": TEXT}}
    fields = {"name": TEXT, "address": address, "metadata": {"type": "object", "additionalProperties": TEXT},
              "expand": {"type": "array", "items": TEXT}, "tax_exempt": {"type": "array", "items": TEXT}}
    form = {"schema": {"type": "object", "properties": fields}, "encoding": {"address": deep, "metadata": deep, "expand": deep}}
    return {"content": {"application/x-www-form-urlencoded": form}}


async def _tools(gateway: Running, base: str) -> dict[str, Any]:
    spec = {"name": "pl", "transport": "openapi", "spec": _document(), "base_url": base, "headers": {"Cookie": "session=operators"}}
    await gateway.register(spec)
    await gateway.create_server({"name": "vs-pl", "upstreams": ["pl"]})
    async with gateway.client("vs-pl") as client:
        return {t.name: t.input_schema for t in (await client.list_tools()).tools}


async def _call(gateway: Running, tool: str, arguments: dict[str, Any]) -> None:
    async with gateway.client("vs-pl", mode="2026-07-28") as client:
        result = await client.call_tool(f"pl__{tool}", arguments)
    assert result.is_error is not True, result.content


async def test_parameters_of_one_name_in_two_places_are_two_arguments_each_sent_in_its_place(gateway: Running, api: Any) -> None:
    base, seen = api
    tools = await _tools(gateway, base)
    assert set(tools["pl__getThing"]["properties"]) == {"query_id", "id", "query_id_2"}
    await _call(gateway, "getThing", {"query_id": "q", "id": "p", "query_id_2": "i"})
    assert seen[-1]["path"] == "/things/p" and parse_qsl(seen[-1]["query"]) == [("query_id", "q"), ("id", "i")]


async def test_a_query_parameter_named_body_and_the_body_are_both_sent(gateway: Running, api: Any) -> None:
    base, seen = api
    tools = await _tools(gateway, base)
    assert tools["pl__addNote"]["properties"]["body"] == TEXT
    assert tools["pl__addNote"]["required"] == ["request_body"]
    await _call(gateway, "addNote", {"body": "b", "request_body": ["one", "two"]})
    assert parse_qsl(seen[-1]["query"]) == [("body", "b")] and json.loads(seen[-1]["body"]) == ["one", "two"]


async def test_a_body_that_is_a_map_sends_the_keys_it_does_not_name(gateway: Running, api: Any) -> None:
    base, seen = api
    tools = await _tools(gateway, base)
    assert set(tools["pl__putTags"]["properties"]) == {"body"}
    await _call(gateway, "putTags", {"body": {"name": "n", "env": "prod", "team": "a"}})
    assert json.loads(seen[-1]["body"]) == {"name": "n", "env": "prod", "team": "a"}


async def test_a_deep_object_list_is_sent_as_stripe_reads_it(gateway: Running, api: Any) -> None:
    base, seen = api
    await _tools(gateway, base)
    await _call(gateway, "listCharges", {"expand": ["data.customer", "data.invoice"]})
    assert parse_qsl(seen[-1]["query"]) == [("expand[]", "data.customer"), ("expand[]", "data.invoice")]


async def test_cookie_parameters_go_beside_the_operators_session_cookie_never_over_it(gateway: Running, api: Any) -> None:
    base, seen = api
    tools = await _tools(gateway, base)
    assert set(tools["pl__me"]["properties"]) == {"theme", "prefs"}  # `session` is the operator's to set
    await _call(gateway, "me", {"theme": "dark", "prefs": {"lang": "en", "session": "callers"}})
    assert seen[-1]["headers"]["cookie"] == "session=operators; theme=dark; lang=en"


async def test_a_form_body_sends_its_fields_as_their_encoding_says(gateway: Running, api: Any) -> None:
    base, seen = api
    await _tools(gateway, base)
    arguments = {
        "name": "ada", "address": {"city": "Paris", "line1": "1 rue"}, "metadata": {"order": "42"},
        "expand": ["sources"], "tax_exempt": ["none", "exempt"],
    }
    await _call(gateway, "createCustomer", arguments)
    assert parse_qsl(seen[-1]["body"]) == [
        ("name", "ada"), ("address[city]", "Paris"), ("address[line1]", "1 rue"), ("metadata[order]", "42"),
        ("expand[]", "sources"), ("tax_exempt", "none"), ("tax_exempt", "exempt"),
    ]
