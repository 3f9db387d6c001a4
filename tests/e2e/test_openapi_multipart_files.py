"""A multipart body's file fields travel as file parts (with a filename) wherever the body sits among
a tool's arguments: merged into them, or one wrapped `body` because it is a map (additionalProperties).
Through a real gateway and MCP client to an API on loopback, checked by what that API received."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.test_openapi_real_documents import api  # noqa: F401 (the recording API, a fixture)
from tests.harness import Running

pytestmark = pytest.mark.anyio

FILE = {"type": "string", "format": "binary"}
TEXT = {"type": "string"}


def _upload(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"multipart/form-data": {"schema": schema}}, "required": True}


def _document() -> dict[str, Any]:
    fields = {"file": FILE, "note": TEXT}
    ok = {"200": {"description": "ok"}}
    return {
        "openapi": "3.0.3", "info": {"title": "files", "version": "1"},
        "paths": {
            "/merged": {"post": {"operationId": "merged", "responses": ok, "requestBody": _upload({"type": "object", "properties": fields})}},
            "/wrapped": {"post": {"operationId": "wrapped", "responses": ok, "requestBody": _upload(
                {"type": "object", "properties": fields, "additionalProperties": TEXT}
            )}},
        },
    }


async def _upload_through(gateway: Running, base: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    await gateway.register({"name": "up", "transport": "openapi", "spec": _document(), "base_url": base})
    await gateway.create_server({"name": "vs-up", "upstreams": ["up"]})
    async with gateway.client("vs-up") as client:
        tools = {t.name: t.input_schema for t in (await client.list_tools()).tools}
        result = await client.call_tool(f"up__{tool}", arguments)
    assert result.is_error is not True, result.content
    return tools[f"up__{tool}"]


def _parts(received: dict[str, Any]) -> dict[str, str]:
    """Each part's Content-Disposition, by its field's name."""
    found = re.findall(r'content-disposition: (form-data; name="([^"]+)"[^\r\n]*)', received["body"], re.IGNORECASE)
    return {name: disposition for disposition, name in found}


async def test_a_wrapped_map_body_sends_its_binary_field_as_a_file_part(gateway: Running, api: Any) -> None:
    base, seen = api
    schema = await _upload_through(gateway, base, "wrapped", {"body": {"file": "PNG bytes", "note": "n", "label": "x"}})
    assert set(schema["properties"]) == {"body"}
    parts = _parts(seen[-1])
    assert seen[-1]["headers"]["content-type"].startswith("multipart/form-data; boundary=")
    assert parts["file"] == 'form-data; name="file"; filename="file"', parts
    assert "filename" not in parts["note"] and "filename" not in parts["label"], parts
    assert "PNG bytes" in seen[-1]["body"]


async def test_a_merged_body_still_sends_its_binary_field_as_a_file_part(gateway: Running, api: Any) -> None:
    base, seen = api
    schema = await _upload_through(gateway, base, "merged", {"file": "PNG bytes", "note": "n"})
    assert set(schema["properties"]) == {"file", "note"}
    parts = _parts(seen[-1])
    assert parts["file"] == 'form-data; name="file"; filename="file"' and "filename" not in parts["note"], parts
