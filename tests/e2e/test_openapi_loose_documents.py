"""What real OpenAPI documents say loosely, sent as they mean it. Read-only properties (OpenAPI 3:
sent in responses only) are no tool input, write-only ones no tool output; a `{name}` template no
parameter declares is a required path parameter; a `?query` written into a path key (Flickr's
`/rest?method=...`, ClickSend's `?date_from={date_from}` with `date_from` declared `in: path`,
openSUSE's `?view=status`, Weatherbit's `?lat={lat}` with `lat` declared `in: query`, all in APIs.guru's
directory) is sent as that query. Each document is registered, its tools read over MCP, and each
call checked by what a service on loopback received."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.test_openapi_real_documents import api  # noqa: F401 (the recording API, a fixture)
from tests.harness import Running

pytestmark = pytest.mark.anyio

REAL = Path(__file__).resolve().parent.parent / "fixtures" / "openapi" / "real"


async def _served(gateway: Running, name: str, spec: Any, base: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """`spec` registered as upstream `name` behind virtual server `vs-<name>`: the registration's
    answer, and the tools as an MCP client lists them."""
    registered = await gateway.register({"name": name, "transport": "openapi", "spec": spec, "base_url": base})
    await gateway.create_server({"name": f"vs-{name}", "upstreams": [name]})
    async with gateway.client(f"vs-{name}") as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    return registered, tools


async def _call(gateway: Running, server: str, tool: str, arguments: dict[str, Any]) -> None:
    response = await gateway.api.post(f"/api/v1/servers/{server}/tools/{tool}", json=arguments)
    assert response.status_code == 200, response.text
    assert not response.json()["is_error"], response.text


async def test_digitalocean_read_only_key_fields_are_no_inputs_and_never_sent(gateway: Running, api: Any) -> None:
    # sshKeys_create's body is the key as sshKeys_list answers it: `id` and `fingerprint` are readOnly.
    base, seen = api
    _, tools = await _served(gateway, "do", json.loads((REAL / "digitalocean-ssh-keys-3.0.json").read_text()), base)
    create = tools["do__sshKeys_create"].input_schema
    assert set(create["properties"]) == {"name", "public_key"} and create["required"] == ["public_key", "name"]
    # A model that read a key and sends it back whole asks for nothing wrong: the rest is sent.
    await _call(gateway, "vs-do", "do__sshKeys_create", {"name": "laptop", "public_key": "ssh-ed25519 AAAA", "id": 5, "fingerprint": "3b:16"})
    assert json.loads(seen[-1]["body"]) == {"name": "laptop", "public_key": "ssh-ed25519 AAAA"}


USER = {
    "type": "object",
    "required": ["id", "name", "password"],
    "properties": {
        "id": {"type": "integer", "readOnly": True},
        "name": {"type": "string"},
        "password": {"type": "string", "writeOnly": True},
        "address": {"$ref": "#/components/schemas/Address"},
        "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}},
    },
}
ADDRESS = {
    "allOf": [
        {"type": "object", "required": ["id", "street"], "properties": {"street": {"type": "string"}}},
        {"type": "object", "properties": {"id": {"readOnly": True, "allOf": [{"type": "string"}]}}},
    ],
}
TAG = {"type": "object", "properties": {"id": {"type": "integer", "readOnly": True}, "label": {"type": "string"}}}


def _users() -> dict[str, Any]:
    body = {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/User"}}}}
    answer = {"201": {"description": "made", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/User"}}}}}
    return {
        "openapi": "3.0.3", "info": {"title": "users", "version": "1"},
        "paths": {
            "/users": {"post": {"operationId": "createUser", "requestBody": body, "responses": answer}},
            "/users/{id}": {"put": {
                "operationId": "replaceUser", "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "requestBody": body, "responses": {"200": answer["201"]},
            }},
        },
        "components": {"schemas": {"User": USER, "Address": ADDRESS, "Tag": TAG}},
    }


async def test_read_only_and_write_only_properties_at_any_depth(gateway: Running, api: Any) -> None:
    base, seen = api
    _, tools = await _served(gateway, "users", _users(), base)
    create = tools["users__createUser"]
    schema = create.input_schema
    assert set(schema["properties"]) == {"name", "password", "address", "tags"}
    assert schema["required"] == ["name", "password"]
    address = schema["properties"]["address"]
    assert "id" not in json.dumps(address) and address["allOf"][0]["required"] == ["street"]
    assert set(schema["properties"]["tags"]["items"]["properties"]) == {"label"}
    answer = create.output_schema["anyOf"][0]  # type: ignore[index]
    assert set(answer["properties"]) == {"id", "name", "address", "tags"} and answer["required"] == ["id", "name"]
    assert "id" in json.dumps(answer["properties"]["address"])

    sent = {
        "id": 9, "name": "ada", "password": "s3cret",
        "address": {"id": "a1", "street": "Main"}, "tags": [{"id": 3, "label": "x"}, {"label": "y"}],
    }
    await _call(gateway, "vs-users", "users__createUser", sent)
    assert json.loads(seen[-1]["body"]) == {"name": "ada", "password": "s3cret", "address": {"street": "Main"}, "tags": [{"label": "x"}, {"label": "y"}]}
    # Without its read-only `id`, the body no longer shares a name with the path parameter: it is
    # merged into the arguments, and `id` is the user to replace.
    replace = tools["users__replaceUser"].input_schema
    assert "body" not in replace["properties"] and replace["required"] == ["id", "name", "password"]
    await _call(gateway, "vs-users", "users__replaceUser", {**sent, "id": 9})
    assert (seen[-1]["method"], seen[-1]["path"]) == ("PUT", "/users/9")
    assert json.loads(seen[-1]["body"]) == {"name": "ada", "password": "s3cret", "address": {"street": "Main"}, "tags": [{"label": "x"}, {"label": "y"}]}


async def test_a_read_only_property_in_a_wrapped_body_is_not_sent(gateway: Running, api: Any) -> None:
    # The expanded Petstore (Swagger 2.0, whose readOnly means the same) with Pet's `id` read-only and
    # addPet taking a Pet: an `allOf`, so the body is one `body` argument.
    base, seen = api
    document = yaml.safe_load((REAL / "petstore-expanded-swagger-2.0.yaml").read_text())
    document["definitions"]["Pet"]["allOf"][1]["properties"]["id"]["readOnly"] = True
    document["paths"]["/pets"]["post"]["parameters"][0]["schema"] = {"$ref": "#/definitions/Pet"}
    _, tools = await _served(gateway, "pets", document, base + "/api")
    body = tools["pets__addPet"].input_schema["properties"]["body"]
    assert '"id"' not in json.dumps(body)
    assert tools["pets__find_pet_by_id"].output_schema["anyOf"][0]["allOf"][1]["required"] == ["id"]  # type: ignore[index]
    await _call(gateway, "vs-pets", "pets__addPet", {"body": {"id": 7, "name": "rex", "tag": "dog"}})
    assert json.loads(seen[-1]["body"]) == {"name": "rex", "tag": "dog"}


async def test_an_undeclared_path_template_is_a_required_path_parameter(gateway: Running, api: Any) -> None:
    base, seen = api
    document = yaml.safe_load((REAL / "petstore-expanded-swagger-2.0.yaml").read_text())
    get = document["paths"]["/pets/{id}"]["get"]
    get["parameters"] = [p for p in get["parameters"] if p["name"] != "id"]  # as loose documents leave it
    _, tools = await _served(gateway, "pets", document, base + "/api")
    schema = tools["pets__find_pet_by_id"].input_schema
    assert schema["properties"]["id"] == {"type": "string"} and schema["required"] == ["id"]
    await _call(gateway, "vs-pets", "pets__find_pet_by_id", {"id": "a b/c?"})
    assert (seen[-1]["path"], seen[-1]["query"]) == ("/api/pets/a%20b%2Fc%3F", "")
    missing = await gateway.api.post("/api/v1/servers/vs-pets/tools/pets__find_pet_by_id", json={})
    assert missing.status_code == 422 and "id" in missing.text  # required, as a path segment must be


def _path(parameters: list[dict[str, Any]], operation_id: str) -> dict[str, Any]:
    return {"get": {"operationId": operation_id, "parameters": parameters, "responses": {"200": {"description": "ok"}}}}


def _param(name: str, where: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": where, "schema": {"type": "string"}, **extra}


def _queries() -> dict[str, Any]:
    """Path keys as APIs.guru's directory has them, each with the parameters its document declares."""
    return {
        "openapi": "3.0.0", "info": {"title": "loose", "version": "1"},
        "paths": {
            "/rest?method=flickr.photos.search": _path([_param("text", "query"), _param("per_page", "query")], "photos_search"),
            "/rest?method=flickr.test.echo": _path([], "test_echo"),
            "/sms/history?date_from={date_from}&date_to={date_to}": _path(
                [_param("date_from", "path", required=True), _param("date_to", "path", required=True)], "sms_history"),
            "/published/{project_name}?view=status": _path(
                [_param("project_name", "path", required=True), _param("view", "query", description="status")], "published_status"),
            "/current?lat={lat}&lon={lon}": _path([_param("lat", "query", required=True), _param("lon", "query")], "current"),
            "/numbers/search/{country}?{search}=1&{search_type}=2": _path(
                [_param("country", "path", required=True), _param("search", "path", required=True),
                 _param("search_type", "path", required=True)], "numbers_search"),
        },
    }


async def test_a_query_in_a_path_key_is_sent_as_that_query(gateway: Running, api: Any) -> None:
    base, seen = api
    registered, tools = await _served(gateway, "loose", _queries(), base)
    assert set(tools) == {f"loose__{n}" for n in ("photos_search", "test_echo", "sms_history", "published_status", "current")}
    assert set(tools["loose__photos_search"].input_schema["properties"]) == {"text", "per_page"}
    assert set(tools["loose__published_status"].input_schema["properties"]) == {"project_name"}  # the key fixes `view`
    assert tools["loose__sms_history"].input_schema["required"] == ["date_from", "date_to"]
    # The one key that names a query parameter by a template is refused alone, saying why.
    assert registered["skipped"] == [
        "GET /numbers/search/{country}?{search}=1&{search_type}=2: the query in its path names a parameter"
        " by a template ('{search}'): what to send is unclear"
    ]
    refreshed = await gateway.api.post("/api/v1/upstreams/loose/refresh")
    assert refreshed.status_code == 200 and refreshed.json()["skipped"] == registered["skipped"]

    await _call(gateway, "vs-loose", "loose__photos_search", {"text": "red fox", "per_page": "5"})
    await _call(gateway, "vs-loose", "loose__test_echo", {})
    await _call(gateway, "vs-loose", "loose__sms_history", {"date_from": "2024-01-01", "date_to": "a&b=c"})
    await _call(gateway, "vs-loose", "loose__published_status", {"project_name": "home:me"})
    await _call(gateway, "vs-loose", "loose__current", {"lat": "1.5", "lon": "-2"})
    assert [(s["path"], s["query"]) for s in seen] == [
        ("/rest", "method=flickr.photos.search&text=red+fox&per_page=5"),
        ("/rest", "method=flickr.test.echo"),
        ("/sms/history", "date_from=2024-01-01&date_to=a%26b%3Dc"),
        ("/published/home%3Ame", "view=status"),
        ("/current", "lat=1.5&lon=-2"),
    ]


def _fanned(levels: int) -> dict[str, Any]:
    """Schemas L0..L<levels>, each with two properties of the next: inlined in full, 2**levels copies
    of a 2 KB description; three references deep, eight."""
    schemas: dict[str, Any] = {}
    for n in range(levels):
        nxt = {"$ref": f"#/components/schemas/L{n + 1}"}
        schemas[f"L{n}"] = {"type": "object", "description": f"level {n} " + "x" * 2000, "properties": {"a": nxt, "b": nxt}}
    schemas[f"L{levels}"] = {"type": "string"}
    return schemas


def _large() -> dict[str, Any]:
    def body(schema: dict[str, Any]) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": schema}}}

    ok = {"200": {"description": "ok"}}
    report = {"type": "object", "properties": {f"f{n}": {"type": "string", "description": "y" * 1000} for n in range(300)}}
    return {
        "openapi": "3.0.3", "info": {"title": "large", "version": "1"},
        "paths": {
            "/reports/{id}": {"get": {
                "operationId": "getReport", "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "a report", "content": {"application/json": {"schema": report}}}},
            }},
            "/orders": {"post": {"operationId": "createOrder", "requestBody": body({"$ref": "#/components/schemas/L0"}), "responses": ok}},
            "/imports": {"post": {"operationId": "bulkImport", "responses": ok, "requestBody": body(
                {"type": "object", "properties": {"kind": {"type": "string", "enum": [f"kind-{n:06d}-" + "z" * 20 for n in range(12_000)]}}},
            )}},
        },
        "components": {"schemas": _fanned(8)},
    }


async def test_a_tool_past_256_kb_is_trimmed_else_left_out_saying_why(gateway: Running, api: Any) -> None:
    base, seen = api
    registered, tools = await _served(gateway, "large", _large(), base)
    assert set(tools) == {"large__getReport", "large__createOrder"}
    for tool in tools.values():
        assert len(json.dumps(tool.model_dump(by_alias=True, exclude_none=True), separators=(",", ":"))) <= 256 * 1024
    # What it answers (300 KB) goes first: what it takes is what the model needs to call it.
    report = tools["large__getReport"]
    assert report.output_schema is None and report.input_schema["required"] == ["id"]
    # Inlined in full, 512 KB: three references deep, the rest named.
    order = json.dumps(tools["large__createOrder"].input_schema)
    assert "level 2 " in order and "level 3 " not in order and "(L3: not described here)" in order
    assert registered["skipped"] == [
        "POST /imports: its tool's definition takes 410 KB even without an output schema and with its schemas"
        " described one reference deep, past the 256 KB one tool may take"
    ]
    await _call(gateway, "vs-large", "large__getReport", {"id": "r1"})
    assert seen[-1]["path"] == "/reports/r1"
