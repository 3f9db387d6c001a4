"""Header parameters a proxy sets (core/openapi_headers.py): no tool offers them, no argument sends
them, and each left out is noted in `skipped`; the operator's own header of that name is theirs."""

from __future__ import annotations

from typing import Any

from bastion.core.openapi_ops import http_call, operations


def _header(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "header", "type": "string", **extra}


def test_a_swagger_document_s_proxy_headers_are_left_out_in_any_case() -> None:
    doc = {
        "swagger": "2.0", "info": {"title": "t", "version": "1"}, "host": "api.example", "basePath": "/v1",
        "paths": {"/items": {"get": {
            "operationId": "listItems",
            "parameters": [_header("x-forwarded-for", required=True), _header("X-REAL-IP"), _header("X-Trace")],
            "responses": {"200": {"description": "ok"}},
        }}},
    }
    skipped: list[str] = []
    [op] = operations(doc, skipped=skipped)
    assert set(op.definition["inputSchema"]["properties"]) == {"X-Trace"}
    assert "required" not in op.definition["inputSchema"]
    assert [s.split(": ")[0] for s in skipped] == ["GET /items", "GET /items"]
    assert "'x-forwarded-for' is not offered to callers" in skipped[0] and "the document requires it" in skipped[0]
    assert "'X-REAL-IP' is not offered to callers" in skipped[1] and "requires" not in skipped[1]
    call = http_call(op, {"x-forwarded-for": "10.0.0.1", "X-REAL-IP": "10.0.0.1", "X-Trace": "t"})
    assert call.headers == {"X-Trace": "t"}


def test_a_proxy_header_the_operator_sets_is_left_out_without_a_note() -> None:
    doc = {
        "openapi": "3.1.0", "info": {"title": "t", "version": "1"},
        "paths": {"/items": {"get": {
            "parameters": [{"name": "X-Forwarded-For", "in": "header", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "ok"}},
        }}},
    }
    skipped: list[str] = []
    [op] = operations(doc, reserved=frozenset({("header", "x-forwarded-for")}), skipped=skipped)
    assert op.definition["inputSchema"]["properties"] == {} and skipped == []
