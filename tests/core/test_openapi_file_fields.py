"""Which fields of a multipart body are file parts, wherever the body sits among a tool's arguments."""

from __future__ import annotations

from typing import Any

from bastion.core.openapi_ops import operations

FILE = {"type": "string", "format": "binary"}


def _operation(schema: dict[str, Any], media: str = "multipart/form-data") -> Any:
    body = {"content": {media: {"schema": schema}}}
    doc = {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {"/up": {"post": {"requestBody": body, "responses": {}}}}}
    return operations(doc)[0]


def test_file_fields_are_found_in_a_wrapped_body_its_all_of_parts_and_lists() -> None:
    schema = {
        "allOf": [{"type": "object", "properties": {"file": FILE}}],
        "properties": {"pages": {"type": "array", "items": FILE}, "img": {"type": "string", "contentMediaType": "image/png"}, "n": {}},
    }
    op = _operation(schema)
    assert op.body == "wrapped" and op.file_fields == {"file", "pages", "img"}


def test_a_merged_body_and_a_form_that_is_not_multipart() -> None:
    merged = _operation({"type": "object", "properties": {"file": FILE, "note": {"type": "string"}}})
    assert merged.body == "merged" and merged.file_fields == {"file"}
    assert _operation({"type": "object", "properties": {"file": FILE}}, "application/x-www-form-urlencoded").file_fields == set()
