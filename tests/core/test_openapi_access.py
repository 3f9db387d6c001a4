"""readOnly and writeOnly properties (core/openapi_access.py): left out of the tool's input or output
schema at any depth, and a read-only value sent anyway dropped from the request body."""

from __future__ import annotations

import json
from typing import Any

from bastion.core.openapi_access import OneWay, without

RO = {"readOnly": True}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "name", "secret"],
    "properties": {
        "id": {"type": "integer", **RO},
        "name": {"type": "string"},
        "secret": {"type": "string", "writeOnly": True},
        "owner": {"type": "object", "required": ["id"], "properties": {"id": {"allOf": [RO, {"type": "string"}]}, "n": {}}},
        "items": {"type": "array", "items": {"oneOf": [{"type": "object", "properties": {"at": RO, "v": {}}}, {"type": "string"}]}},
    },
}


def test_read_only_properties_leave_the_input_schema_and_its_required_at_every_depth() -> None:
    schema, omitted = OneWay().for_requests(SCHEMA)
    assert set(schema["properties"]) == {"name", "secret", "owner", "items"} and schema["required"] == ["name", "secret"]
    assert schema["properties"]["owner"] == {"type": "object", "properties": {"n": {}}}
    assert schema["properties"]["items"]["items"]["oneOf"][0]["properties"] == {"v": {}}
    assert json.dumps(SCHEMA).count("readOnly") == 3  # the input is not changed in place
    body = {"id": 1, "name": "a", "owner": {"id": "o", "n": 2}, "items": [{"at": 3, "v": 4}, "s"], "other": 5}
    assert without(body, omitted) == {"name": "a", "owner": {"n": 2}, "items": [{"v": 4}, "s"], "other": 5}


def test_required_names_a_read_only_property_of_another_all_of_part() -> None:
    schema, omitted = OneWay().for_requests({"allOf": [{"type": "object", "required": ["id", "name"]}, {"properties": {"id": RO, "name": {}}}]})
    assert schema == {"allOf": [{"type": "object", "required": ["name"]}, {"properties": {"name": {}}}]}
    assert without({"id": 1, "name": 2}, omitted) == {"name": 2}


def test_write_only_properties_leave_the_output_schema() -> None:
    schema = OneWay().for_responses(SCHEMA)
    assert set(schema["properties"]) == {"id", "name", "owner", "items"} and schema["required"] == ["id", "name"]


def test_a_schema_with_neither_is_returned_as_it_is() -> None:
    plain = {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "string"}}}, "allOf": [{}]}
    assert OneWay().for_requests(plain) == (plain, None) and OneWay().for_requests(plain)[0] is plain
    assert OneWay().for_responses(plain) is plain
    assert without({"a": 1}, None) == {"a": 1}


def test_a_subschema_shared_many_times_is_walked_once() -> None:
    leaf: dict[str, Any] = {"type": "object", "properties": {"id": RO}}
    for _ in range(60):  # 2**60 paths through the tree, each a shared subschema
        leaf = {"type": "object", "properties": {"a": leaf, "b": leaf}}
    schema, omitted = OneWay().for_requests(leaf)
    assert schema["properties"]["a"] is schema["properties"]["b"]
    assert omitted is not None


def test_an_alternative_that_needs_what_another_marks_read_only_keeps_it() -> None:
    """A value that may match either of two object alternatives kept only what both leave out: `id`
    read-only in one and required in the other used to be dropped from every request."""
    customer = {"oneOf": [
        {"type": "object", "properties": {"id": RO, "name": {"type": "string"}}},
        {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}, "at": RO}},
    ]}
    schema, omitted = OneWay().for_requests({"type": "object", "properties": {"customer": customer}})
    assert schema["properties"]["customer"]["oneOf"][1]["required"] == ["id"]
    assert without({"customer": {"id": "cus_42"}}, omitted) == {"customer": {"id": "cus_42"}}
    both = {"anyOf": [{"type": "object", "properties": {"id": RO, "a": {}}}, {"properties": {"id": RO, "b": {}}}]}
    _, dropped = OneWay().for_requests(both)
    assert without({"id": 1, "a": 2}, dropped) == {"a": 2}
