"""Attack class: header parameters an OpenAPI document declares that a proxy in front of the API sets
for the request it passes on: the client's address, host and scheme (`X-Forwarded-For`, `Forwarded`,
`X-Real-IP`, `True-Client-IP`...), the user an authenticating proxy vouches for (`X-Forwarded-User`),
another method or path (`X-HTTP-Method-Override`, `X-Original-URL`). APIs read them for allow-lists,
rate limits, audit and routing, and documents declare them (often on every operation). Offered as
tool arguments they let a caller claim any address or user towards the API, with the upstream's
credentials. No tool offers them, no argument sends them, and registering the upstream says which
were left out. Bastion does not send the caller's real address either."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.harness import Running, serve_asgi

pytestmark = pytest.mark.anyio

API_KEY = "ledger-key-0123456789"

# As an API behind an edge proxy publishes it: the proxy's headers are declared for the record (and
# for its operators' test consoles), some on the path item, some through shared components.
DOCUMENT = """
openapi: 3.0.3
info: {title: Ledger, version: 2.4.0}
servers:
  - url: /v2
components:
  securitySchemes:
    apiKey: {type: apiKey, in: header, name: X-Api-Key}
  parameters:
    ForwardedFor:
      name: X-Forwarded-For
      in: header
      description: Client address as the edge proxy saw it; checked against the account's IP allow-list.
      schema: {type: string}
    RequestId:
      name: X-Request-Id
      in: header
      description: Echoed back for tracing.
      schema: {type: string}
  schemas:
    Transaction:
      type: object
      properties:
        id: {type: string, readOnly: true}
        amount: {type: integer}
        memo: {type: string}
security:
  - apiKey: []
paths:
  /accounts/{accountId}/transactions:
    parameters:
      - {name: accountId, in: path, required: true, schema: {type: string}}
      - $ref: '#/components/parameters/ForwardedFor'
      - $ref: '#/components/parameters/RequestId'
    get:
      operationId: listTransactions
      summary: List an account's transactions
      parameters:
        - {name: limit, in: query, schema: {type: integer, minimum: 1}}
        - {name: X-Real-IP, in: header, schema: {type: string}}
        - {name: Forwarded, in: header, description: RFC 7239, schema: {type: string}}
        - {name: True-Client-IP, in: header, schema: {type: string}}
        - {name: CF-Connecting-IP, in: header, schema: {type: string}}
        - {name: X-Client-IP, in: header, schema: {type: string}}
        - {name: X-Forwarded-Host, in: header, schema: {type: string}}
        - {name: X-Forwarded-Proto, in: header, required: true, schema: {type: string, enum: [http, https]}}
        - {name: X-Api-Key, in: header, schema: {type: string}}
      responses:
        '200':
          description: the transactions
          content:
            application/json:
              schema: {type: array, items: {$ref: '#/components/schemas/Transaction'}}
    post:
      operationId: createTransaction
      summary: Record a transaction
      parameters:
        - {name: X-Forwarded-User, in: header, description: Set by the SSO proxy, schema: {type: string}}
        - {name: X-HTTP-Method-Override, in: header, schema: {type: string}}
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Transaction'}
      responses:
        '201': {description: recorded}
"""

GET, POST = "GET /accounts/{accountId}/transactions", "POST /accounts/{accountId}/transactions"
PROXY_HEADERS = {
    "X-Forwarded-For": [GET, POST],  # declared on the path item: each of its operations leaves it out
    "X-Real-IP": [GET], "Forwarded": [GET], "True-Client-IP": [GET], "CF-Connecting-IP": [GET], "X-Client-IP": [GET],
    "X-Forwarded-Host": [GET], "X-Forwarded-Proto": [GET], "X-Forwarded-User": [POST], "X-HTTP-Method-Override": [POST],
}
"""Each header a proxy sets that the document declares, and the operations that declare it."""
CLAIMS = {
    "X-Forwarded-For": "10.0.0.1", "X-Real-IP": "10.0.0.1", "Forwarded": "for=10.0.0.1;host=internal;proto=https",
    "True-Client-IP": "10.0.0.1", "CF-Connecting-IP": "10.0.0.1", "X-Client-IP": "10.0.0.1",
    "X-Forwarded-Host": "admin.internal", "X-Forwarded-Proto": "https", "X-Forwarded-User": "root",
    "X-HTTP-Method-Override": "DELETE",
}


@dataclass
class Ledger:
    gateway: Running
    seen: list[dict[str, Any]]
    """Every request the API received: method, path, headers."""
    skipped: list[str]
    """What registering the upstream said it left out."""


@pytest.fixture
async def ledger(gateway: Running) -> AsyncIterator[Ledger]:
    """The Ledger API on loopback (its document at /openapi.yaml, recording every request it receives)
    registered as upstream `ledger` with its API key, behind virtual server `vs`."""
    seen: list[dict[str, Any]] = []

    async def document(_request: Request) -> Response:
        return Response(DOCUMENT, media_type="application/yaml")

    async def transactions(request: Request) -> JSONResponse:
        seen.append({"method": request.method, "path": request.url.path, "headers": dict(request.headers)})
        if request.method == "POST":
            return JSONResponse({"id": "t-2", **(await request.json())}, status_code=201)
        return JSONResponse([{"id": "t-1", "amount": 5, "memo": "coffee"}])

    routes = [Route("/openapi.yaml", document), Route("/v2/accounts/{account}/transactions", transactions, methods=["GET", "POST"])]
    async with serve_asgi(Starlette(routes=routes)) as base:
        registered = await gateway.register({
            "name": "ledger", "transport": "openapi", "spec_url": f"{base}/openapi.yaml",
            "auth": {"type": "api_key", "header": "X-Api-Key", "value": API_KEY},
        })
        await gateway.create_server({"name": "vs", "upstreams": ["ledger"]})
        yield Ledger(gateway, seen, registered["skipped"])


def _no_claims(headers: dict[str, str]) -> None:
    """None of the proxy's headers, and none of the values a caller claimed, reached the API."""
    assert not {name.lower() for name in PROXY_HEADERS} & set(headers), headers
    assert not any(claim in value for claim in ("10.0.0.1", "admin.internal", "root", "DELETE") for value in headers.values())
    assert headers["x-api-key"] == API_KEY


async def test_no_tool_offers_a_header_a_proxy_sets(ledger: Ledger) -> None:
    gateway = ledger.gateway
    async with gateway.client("vs") as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    listing = tools["ledger__listTransactions"].input_schema
    assert set(listing["properties"]) == {"accountId", "limit", "X-Request-Id"}
    # Required by the document, but the operation is offered without it: the API answers as it does
    # to a request that lacks it.
    assert listing["required"] == ["accountId"]
    assert set(tools["ledger__createTransaction"].input_schema["properties"]) == {"accountId", "X-Request-Id", "amount", "memo"}


async def test_registering_the_upstream_says_which_headers_were_left_out_and_why(ledger: Ledger) -> None:
    gateway, skipped = ledger.gateway, ledger.skipped
    for name, operations in PROXY_HEADERS.items():
        notes = [s for s in skipped if f"header parameter {name!r}" in s]
        assert [n.split(": ")[0] for n in notes] == operations, (name, skipped)
        assert all("is not offered to callers" in n for n in notes)
    assert len(skipped) == 11
    assert "claim the client's address" in next(s for s in skipped if "'X-Forwarded-For'" in s)
    assert "claim a user" in next(s for s in skipped if "'X-Forwarded-User'" in s)
    assert "another method or path" in next(s for s in skipped if "'X-HTTP-Method-Override'" in s)
    assert "the document requires it" in next(s for s in skipped if "'X-Forwarded-Proto'" in s)
    # The upstream's own credential header and the tracing header are not proxy headers: no note.
    assert not [s for s in skipped if "X-Api-Key" in s or "X-Request-Id" in s]
    refreshed = await gateway.api.post("/api/v1/upstreams/ledger/refresh")
    assert refreshed.status_code == 200 and refreshed.json()["skipped"] == skipped


async def test_a_refresh_that_leaves_out_the_same_logs_nothing_new(ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    # Health checks rediscover every 30 s: a document's notes are logged when they are new, not
    # once per operation per check.
    with caplog.at_level(logging.INFO, logger="bastion.upstream"):
        for _ in range(2):
            refreshed = await ledger.gateway.api.post("/api/v1/upstreams/ledger/refresh")
            assert refreshed.status_code == 200 and refreshed.json()["skipped"] == ledger.skipped
    assert not [r for r in caplog.records if "left out" in r.getMessage()]


async def test_a_caller_cannot_claim_an_address_or_user_over_mcp(ledger: Ledger) -> None:
    gateway, seen = ledger.gateway, ledger.seen
    async with gateway.client("vs") as client:
        listed = await client.call_tool("ledger__listTransactions", {"accountId": "acc-1", "X-Request-Id": "r-1", **CLAIMS})
        created = await client.call_tool(
            "ledger__createTransaction", {"accountId": "acc-1", "amount": 7, "memo": "tea", **CLAIMS}
        )
    assert listed.is_error is not True and created.is_error is not True
    assert [(s["method"], s["path"]) for s in seen] == [
        ("GET", "/v2/accounts/acc-1/transactions"), ("POST", "/v2/accounts/acc-1/transactions"),
    ]
    assert seen[0]["headers"]["x-request-id"] == "r-1"
    for request in seen:
        _no_claims(request["headers"])


async def test_a_caller_cannot_claim_an_address_through_the_rest_facade(ledger: Ledger) -> None:
    gateway, seen = ledger.gateway, ledger.seen
    # As arguments, and as headers of the caller's own request to Bastion: neither reaches the API
    # (nor does Bastion send the caller's real address).
    answer = await gateway.api.post(
        "/api/v1/servers/vs/tools/ledger__listTransactions", json={"accountId": "acc-1", **CLAIMS},
        headers={"X-Forwarded-For": "10.0.0.1", "Forwarded": "for=10.0.0.1", "X-Real-IP": "10.0.0.1"},
    )
    assert answer.status_code == 200, answer.text
    assert len(seen) == 1
    _no_claims(seen[0]["headers"])
    facade_doc = (await gateway.api.get("/api/v1/servers/vs/openapi.json")).text
    assert "X-Forwarded-For" not in facade_doc and "X-Real-IP" not in facade_doc

