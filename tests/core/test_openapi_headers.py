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


def _offered(names: list[str], reserved: frozenset[tuple[str, str]] = frozenset()) -> tuple[set[str], list[str]]:
    doc = {
        "openapi": "3.1.0", "info": {"title": "t", "version": "1"},
        "paths": {"/items": {"get": {
            "parameters": [{"name": n, "in": "header", "schema": {"type": "string"}} for n in names],
            "responses": {"200": {"description": "ok"}},
        }}},
    }
    skipped: list[str] = []
    [op] = operations(doc, reserved=reserved, skipped=skipped)
    return set(op.definition["inputSchema"]["properties"]), skipped


def test_underscore_spellings_a_cgi_server_reads_as_hyphens_are_left_out_too() -> None:
    # Gunicorn before 22, CGI and WSGI servers read X_Forwarded_For as X-Forwarded-For.
    offered, skipped = _offered(["X_Forwarded_For", "x_real_ip", "Content_Length", "X_Trace"])
    assert offered == {"X_Trace"}
    assert len(skipped) == 2 and "'X_Forwarded_For'" in skipped[0] and "'x_real_ip'" in skipped[1]


def test_an_underscore_spelling_of_the_operators_credential_header_is_not_offered() -> None:
    offered, skipped = _offered(["X_Api_Key", "X-Other"], reserved=frozenset({("header", "x-api-key")}))
    assert offered == {"X-Other"} and skipped == []


def test_identity_and_routing_headers_of_known_proxies_are_left_out_by_family() -> None:
    names = [
        "X-Forwarded-Client-Cert", "X-SSL-Client-Verify", "X-WEBAUTH-USER", "X-Authenticated-Userid",
        "X-Goog-Authenticated-User-Email", "X-Goog-IAP-JWT-Assertion", "X-MS-CLIENT-PRINCIPAL-NAME",
        "Cf-Access-Authenticated-User-Email", "Cf-Access-Jwt-Assertion", "X-Amzn-Oidc-Identity",
        "X-Forwarded-Uri", "X-Forwarded-Method", "X-Original-Method", "X-Envoy-Original-Path",
        "X-Forwarded-Anything", "X-Request-Id",
    ]
    offered, skipped = _offered(names)
    assert offered == {"X-Request-Id"}
    assert len(skipped) == len(names) - 1 and all("is not offered to callers" in s for s in skipped)
