"""One tool's definition held to 256 KB, checked once a pass over the document is kept: the same
decisions as encoding each tool as it is built (what is trimmed, what is left out and in what order,
what counts towards the operations limit)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from bastion.core.openapi_ops import MAX_TOOL_BYTES, operations
from bastion.core.openapi_refs import SpecError
from bastion.core.openapi_sizes import JsonSizes

REAL = Path(__file__).resolve().parent.parent / "fixtures" / "openapi" / "real"

OK = {"200": {"description": "ok"}}


def _huge_body() -> dict[str, Any]:
    enum = [f"kind-{n:06d}-" + "z" * 20 for n in range(12_000)]
    schema = {"type": "object", "properties": {"kind": {"type": "string", "enum": enum}}}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _answering(pad: int) -> dict[str, Any]:
    schema = {"type": "object", "description": "y" * pad, "properties": {"a": {"type": "string"}}}
    answer = {"200": {"description": "ok", "content": {"application/json": {"schema": schema}}}}
    return _doc({"/r": {"get": {"operationId": "r", "responses": answer}}})


def _doc(paths: dict[str, Any]) -> dict[str, Any]:
    return {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": paths}


def _size(definition: Any) -> int:
    return len(json.dumps(definition, separators=(",", ":")))


def test_operations_left_out_are_listed_in_document_order_whatever_the_reason() -> None:
    doc = _doc({
        "/a?{x}=1": {"get": {"operationId": "a", "responses": OK}},
        "/b": {"post": {"operationId": "b", "requestBody": _huge_body(), "responses": OK}},
        "/c": {"get": {"operationId": "c", "responses": OK}},
        "/d?{y}=1": {"get": {"operationId": "d", "responses": OK}},
    })
    skipped: list[str] = []
    assert [op.tool for op in operations(doc, skipped=skipped)] == ["c"]
    assert [s.split(":")[0] for s in skipped] == ["GET /a?{x}=1", "POST /b", "GET /d?{y}=1"]
    assert "takes 410 KB even without an output schema" in skipped[1]


def test_only_operations_that_fit_count_towards_the_limit() -> None:
    doc = _doc({
        "/a": {"get": {"operationId": "a", "responses": OK}},
        "/b": {"post": {"operationId": "b", "requestBody": _huge_body(), "responses": OK}},
        "/c": {"get": {"operationId": "c", "responses": OK}},
    })
    assert [op.tool for op in operations(doc, limit=2)] == ["a", "c"]
    doc["paths"]["/d"] = {"get": {"operationId": "d", "responses": OK}}
    with pytest.raises(SpecError, match="more than 2 operations"):
        operations(doc, limit=2)


def test_the_output_schema_goes_only_when_the_whole_definition_is_past_the_limit() -> None:
    small = operations(_answering(0))[0].definition
    pad = MAX_TOOL_BYTES - _size(small)  # each character of the description is one byte
    exactly = operations(_answering(pad))[0].definition
    assert "outputSchema" in exactly and _size(exactly) == MAX_TOOL_BYTES
    assert "outputSchema" not in operations(_answering(pad + 1))[0].definition


def test_sizes_counted_with_shared_schemas_encoded_once_are_the_encodings_lengths() -> None:
    sizes = JsonSizes()
    for path in sorted(REAL.iterdir()):
        if path.suffix in (".json", ".yaml"):
            for op in operations(yaml.safe_load(path.read_text())):
                assert sizes.of(op.definition) == _size(op.definition), (path.name, op.tool)
    shared: dict[str, Any] = {"type": "object", "properties": {"é": {"enum": [1.5, None, True, False, -2]}}}
    for value in ({"a": shared, "b": [shared, {"c": shared}]}, {1: shared, "n": None}, [], {}, "x\"\n"):
        assert sizes.of(value) == _size(value) and sizes.of(value) == _size(value)
