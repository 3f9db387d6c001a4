"""The facade's pure parts: argument errors with JSON pointers, and the per-server OpenAPI document."""

from __future__ import annotations

from typing import Any

from openapi_spec_validator import validate

from bastion.core.arguments import argument_errors, pointer
from bastion.core.facade_doc import component_name, server_document

NESTED: dict[str, Any] = {
    "type": "object",
    "$defs": {
        "Node": {
            "type": "object",
            "properties": {
                "label": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
            },
            "required": ["label"],
        }
    },
    "properties": {"root": {"$ref": "#/$defs/Node"}, "a/b": {"type": "integer"}},
    "required": ["root"],
}


def test_pointers_escape_slashes_and_tildes() -> None:
    assert pointer(["a/b", "c~d", 0]) == "/a~1b/c~0d/0"
    assert pointer([]) == ""


def test_every_bad_field_is_reported_with_its_pointer() -> None:
    errors = argument_errors(NESTED, {"root": {"children": [{"label": 3}]}, "a/b": "x"})
    assert {"pointer": "/root/label", "message": "'label' is a required property"} in errors
    assert {"pointer": "/root/children/0/label", "message": "3 is not of type 'string'"} in errors
    assert {"pointer": "/a~1b", "message": "'x' is not of type 'integer'"} in errors
    assert argument_errors(NESTED, {"root": {"label": "ok"}}) == []


def test_a_broken_schema_is_left_to_the_upstream() -> None:
    assert argument_errors({"type": "no-such-type"}, {"a": 1}) == []
    assert argument_errors({"$ref": "#/$defs/missing"}, {"a": 1}) == []
    assert argument_errors(None, {"a": 1}) == []
    assert argument_errors({"type": "object"}, [1]) == [
        {"pointer": "", "message": "the arguments must be a JSON object"}
    ]


def test_the_document_is_valid_and_local_references_point_into_it() -> None:
    tools = [
        {"name": "tree", "description": "Walks a tree.", "inputSchema": NESTED, "outputSchema": NESTED},
        {"name": "odd name/with slash", "inputSchema": {"type": "object"}},
        {"name": "odd name_with slash", "inputSchema": {"type": "object"}},
    ]
    prompts = [{"name": "greet", "arguments": [{"name": "who", "required": True}]}]
    document = server_document("dev", "https://b.example", "1.0", tools, prompts, [{"uri": "x://a"}], [])
    validate(document)
    schemas = document["components"]["schemas"]
    assert schemas["call_tree.input"]["properties"]["root"]["$ref"] == "#/components/schemas/call_tree.input/$defs/Node"
    assert {"call_odd_name_with_slash", "call_odd_name_with_slash_2"} <= {
        op["post"]["operationId"] for op in document["paths"].values() if "post" in op
    }
    assert "/api/v1/servers/dev/tools/odd%20name%2Fwith%20slash" in document["paths"]
    assert component_name("a b/c") == "a_b_c"


def test_a_caller_who_may_use_nothing_gets_an_empty_but_valid_document() -> None:
    document = server_document("dev", "http://b", "1.0", [], [], [], [])
    validate(document)
    assert document["paths"] == {}
