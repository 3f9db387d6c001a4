"""readOnly under `additionalProperties` and `patternProperties` (core/openapi_access.py): what a
request leaves out of the keys an object does not name, judged by each object schema for itself (an
`allOf` part's own `properties`), and by every alternative of an `anyOf`."""

from __future__ import annotations

from typing import Any

from bastion.core.openapi_access import OneWay, without

RO = {"readOnly": True}
ITEM = {"type": "object", "properties": {"id": RO, "label": {}}}


def test_a_map_of_objects_loses_their_read_only_properties_in_schema_and_request() -> None:
    schema, omitted = OneWay().for_requests({"type": "object", "properties": {"n": {}}, "additionalProperties": ITEM})
    assert schema["additionalProperties"]["properties"] == {"label": {}}
    assert without({"n": {"id": 1}, "a": {"id": 2, "label": 3}}, omitted) == {"n": {"id": 1}, "a": {"label": 3}}


def test_a_pattern_applies_to_every_key_it_matches_and_additional_properties_to_the_rest() -> None:
    node = {
        "type": "object", "properties": {"x-named": {}},
        "patternProperties": {"^x-": RO, "^item_": ITEM}, "additionalProperties": {"type": "integer", **RO},
    }
    schema, omitted = OneWay().for_requests(node)
    assert "additionalProperties" not in schema and set(schema["patternProperties"]) == {"^item_"}
    value = {"x-named": 1, "x-other": 2, "item_1": {"id": 3, "label": 4}, "free": 5}
    assert without(value, omitted) == {"item_1": {"label": 4}}


def test_each_all_of_part_judges_the_keys_it_does_not_name_itself() -> None:
    node = {"allOf": [{"properties": {"a": {}}, "additionalProperties": ITEM}, {"properties": {"b": ITEM}}]}
    _, omitted = OneWay().for_requests(node)
    # `b` is the first part's additional property too: both parts' rules apply to it.
    assert without({"a": {"id": 1}, "b": {"id": 2, "label": 3}, "c": {"id": 4}}, omitted) == {
        "a": {"id": 1}, "b": {"label": 3}, "c": {}
    }


def test_of_any_of_alternatives_a_map_rule_holds_only_if_every_object_one_has_it() -> None:
    maps: dict[str, Any] = {"type": "object", "additionalProperties": ITEM}
    _, both = OneWay().for_requests({"anyOf": [maps, {"type": "string"}]})
    assert without({"k": {"id": 1, "label": 2}}, both) == {"k": {"label": 2}}
    _, either = OneWay().for_requests({"anyOf": [maps, {"type": "object", "additionalProperties": {}}]})
    assert without({"k": {"id": 1, "label": 2}}, either) == {"k": {"id": 1, "label": 2}}

