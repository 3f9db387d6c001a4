"""OpenAPI documents as tools, on real-world shaped documents: the Petstore (3.0, YAML, and the
classic Swagger 2.0 one) and a large generated 3.1 document with hundreds of operations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from bastion.core.models import Selection
from bastion.core.naming import gateway_names
from bastion.core.openapi_ops import ArgumentError, form_fields, http_call, operations
from bastion.core.openapi_refs import SpecError
from bastion.core.openapi_swagger import as_openapi3

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "openapi"


def load(name: str) -> dict[str, Any]:
    text = (FIXTURES / name).read_text()
    return dict(yaml.safe_load(text) if name.endswith(".yaml") else json.loads(text))


def test_the_petstore_becomes_nineteen_tools_with_resolved_schemas() -> None:
    ops = {op.tool: op for op in operations(load("petstore-3.0.yaml"))}
    assert len(ops) == 19
    add = ops["addPet"].definition
    assert add["inputSchema"]["required"] == ["name", "photoUrls"]
    assert add["inputSchema"]["properties"]["category"]["properties"]["name"] == {"type": "string", "example": "Dogs"}
    assert add["outputSchema"]["anyOf"][0]["properties"]["status"]["enum"] == ["available", "pending", "sold"]
    assert ops["findPetsByStatus"].definition["inputSchema"]["properties"]["status"]["default"] == "available"
    assert "outputSchema" not in ops["findPetsByStatus"].definition  # an array
    assert ops["uploadFile"].body == "raw" and ops["uploadFile"].media_type == "application/octet-stream"
    assert ops["createUsersWithListInput"].body == "wrapped"
    assert ops["deletePet"].definition["inputSchema"]["required"] == ["petId"]
    for op in ops.values():
        Draft202012Validator.check_schema(op.definition["inputSchema"])
        assert "$ref" not in json.dumps(op.definition)


def test_hundreds_of_operations_from_a_large_3_1_document() -> None:
    ops = operations(load("large-3.1.json"))
    assert len(ops) == 280
    names = [op.tool for op in ops]
    assert len(set(names)) == len(names)
    assert "issues_create" in names and "get_repos_owner_repo_issues_id_events" in names
    # Each becomes a valid, collision-free gateway name.
    exposed = gateway_names("code", [(n, n) for n in names])
    assert len(set(exposed)) == len(exposed)
    issue = next(op for op in ops if op.tool == "issues_get").definition
    assert issue["inputSchema"]["required"] == ["owner", "repo", "id"]
    thread = issue["outputSchema"]["anyOf"][0]["properties"]["thread"]
    assert thread["properties"]["replies"]["items"]["description"].startswith("(recursive")
    for op in ops:
        Draft202012Validator.check_schema(op.definition["inputSchema"])


def test_selections_by_operation_tag_and_path_glob() -> None:
    doc = load("petstore-3.0.yaml")
    picked = operations(doc, include=Selection(tags=("store",), operations=("loginUser",)))
    assert sorted(op.tool for op in picked) == ["deleteOrder", "getInventory", "getOrderById", "loginUser", "placeOrder"]
    rest = operations(doc, exclude=Selection(paths=("/pet*", "/user*")))
    assert {op.path for op in rest} == {"/store/inventory", "/store/order", "/store/order/{orderId}"}


def test_arguments_map_onto_path_query_header_and_body() -> None:
    ops = {op.tool: op for op in operations(load("petstore-3.0.yaml"))}
    call = http_call(ops["deletePet"], {"petId": 7, "api_key": "k"})
    assert (call.method, call.path, call.headers) == ("DELETE", "/pet/7", {"api_key": "k"})
    call = http_call(ops["findPetsByTags"], {"tags": ["a", "b c"]})
    assert call.query == (("tags", "a"), ("tags", "b c"))
    call = http_call(ops["addPet"], {"name": "rex", "photoUrls": []})
    assert call.json_body == {"name": "rex", "photoUrls": []} and call.media_type == "application/json"
    call = http_call(ops["getUserByName"], {"username": "a/b"})
    assert call.path == "/user/a%2Fb"


def test_a_missing_path_parameter_is_an_argument_error_not_a_literal_template() -> None:
    ops = {op.tool: op for op in operations(load("petstore-3.0.yaml"))}
    with pytest.raises(ArgumentError, match="'username'"):
        http_call(ops["getUserByName"], {})


@pytest.mark.parametrize(
    "doc",
    [{"swagger": "1.2"}, {"info": {}}, {"swagger": "2.0", "paths": []}, {"openapi": "3.0.0", "paths": []}, {"openapi": "3.1.0", "paths": {"/x": {"get": {"parameters": [{"$ref": "other.yaml#/p"}]}}}}],
)
def test_documents_it_cannot_read_say_why(doc: dict[str, Any]) -> None:
    with pytest.raises(SpecError):
        operations(doc)


def test_a_swagger_2_petstore_becomes_the_same_kind_of_tools() -> None:
    doc = load("petstore-swagger-2.0.json")
    ops = {op.tool: op for op in operations(doc)}
    assert len(ops) == 20
    assert as_openapi3(doc)["servers"] == [{"url": "https://petstore.swagger.io/v2"}]
    add = ops["addPet"]
    assert (add.body, add.media_type) == ("merged", "application/json")  # JSON chosen over XML
    assert add.definition["inputSchema"]["required"] == ["name", "photoUrls"]
    assert add.definition["inputSchema"]["properties"]["tags"]["items"]["properties"]["name"] == {"type": "string"}
    get = ops["getPetById"].definition
    assert get["outputSchema"]["anyOf"][0]["properties"]["status"]["enum"] == ["available", "pending", "sold"]
    order = ops["getOrderById"].definition["inputSchema"]["properties"]["orderId"]
    assert (order["type"], order["minimum"], order["maximum"]) == ("integer", 1, 10)
    form = ops["updatePetWithForm"]
    assert (form.body, form.media_type, form.body_fields) == ("merged", "application/x-www-form-urlencoded", {"name", "status"})
    upload = ops["uploadFile"]
    assert upload.media_type == "multipart/form-data"
    assert upload.definition["inputSchema"]["properties"]["file"]["format"] == "binary"
    assert ops["createUsersWithListInput"].body == "wrapped"
    for op in ops.values():
        Draft202012Validator.check_schema(op.definition["inputSchema"])
        assert "$ref" not in json.dumps(op.definition)


def test_swagger_collection_formats_and_form_fields_map_onto_the_request() -> None:
    ops = {op.tool: op for op in operations(load("petstore-swagger-2.0.json"))}
    assert http_call(ops["findPetsByTags"], {"tags": ["a", "b c"]}).query == (("tags", "a,b c"),)  # csv, 2.0's default
    assert http_call(ops["findPetsByStatus"], {"status": ["sold", "pending"]}).query == (("status", "sold"), ("status", "pending"))
    call = http_call(ops["updatePetWithForm"], {"petId": 4, "name": "rex", "status": "sold"})
    assert (call.path, call.media_type) == ("/pet/4", "application/x-www-form-urlencoded")
    assert form_fields(call.json_body) == [("name", "rex"), ("status", "sold")]
    assert form_fields({"a": [1, 2], "b": True, "c": {"x": 1}, "d": None}) == [("a", "1"), ("a", "2"), ("b", "true"), ("c", '{"x": 1}')]


def test_openapi_3_array_styles() -> None:
    doc = {"openapi": "3.0.3", "paths": {"/items/{ids}": {"get": {"operationId": "items", "parameters": [
        {"name": "ids", "in": "path", "required": True, "schema": {"type": "array", "items": {"type": "integer"}}},
        {"name": "a", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}},
        {"name": "b", "in": "query", "explode": False, "schema": {"type": "array", "items": {"type": "string"}}},
        {"name": "c", "in": "query", "style": "pipeDelimited", "explode": False, "schema": {"type": "array"}},
    ]}}}}
    call = http_call(operations(doc)[0], {"ids": [1, 2], "a": ["x", "y"], "b": ["x", "y"], "c": ["x", "y"]})
    assert call.path == "/items/1,2"  # simple style: the values percent-encoded, the commas between them not
    assert call.query == (("a", "x"), ("a", "y"), ("b", "x,y"), ("c", "x|y"))


def test_references_that_double_at_each_level_are_inlined_shallower_not_expanded() -> None:
    # References each naming the next twice: 16 levels inline to ~460,000 nodes, 30 to gigabytes (a
    # 3 KB document held Bastion for minutes and 1.9 GB before this limit). Past the limit they are
    # inlined only a few references deep, the deeper ones named.
    levels = 16
    schemas: dict[str, Any] = {
        f"S{i}": {"type": "object", "properties": {"a": {"$ref": f"#/components/schemas/S{i + 1}"}, "b": {"$ref": f"#/components/schemas/S{i + 1}"}}}
        for i in range(levels)
    }
    schemas[f"S{levels}"] = {"type": "string"}
    body = {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/S0"}}}}
    doc = {
        "openapi": "3.0.0",
        "info": {"title": "bomb", "version": "1"},
        "paths": {"/a": {"post": {"operationId": "bomb", "requestBody": body, "responses": {"200": {"description": "ok"}}}}},
        "components": {"schemas": schemas},
    }
    (bomb,) = operations(doc)
    shown = json.dumps(bomb.definition["inputSchema"])
    assert "(S3: not described here)" in shown and len(shown) < 5000
