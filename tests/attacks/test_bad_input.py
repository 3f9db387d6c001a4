"""Attack class: input that crashes a handler (issue 9, finding 13). Every malformed or extreme body
gets a 4xx problem+json (REST) or a JSON-RPC error (MCP), never a 500 that also drops the connection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from bastion.config import Settings
from tests.attacks.test_sse_sessions import sse_session
from tests.e2e.test_token_scopes import INITIALIZE, MCP_HEADERS
from tests.harness import TOKEN, Running, serve, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio

DEEP = 100_000
NESTED_LIST = b"[" * DEEP + b"]" * DEEP
NESTED_OBJECT = b'{"a":' * DEEP + b"1" + b"}" * DEEP
HUGE_INT = b"1" * 5000
MODERN = {"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/list"}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("bad-input")
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp}/b.db")) as running:
        await running.register(stdio_fixture("fx"))
        await running.create_server({"name": "vs", "upstreams": ["fx"], "visibility": "public"})
        yield running


def _problem(response: httpx2.Response, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "Traceback" not in response.text


async def _post(gateway: Running, path: str, body: bytes, token: str | None = TOKEN) -> httpx2.Response:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=60) as http:
        return await http.post(path, content=body, headers=headers)


WRITE_PATHS = ["/api/v1/upstreams", "/api/v1/servers", "/api/v1/tokens", "/api/v1/users", "/api/v1/teams"]


@pytest.mark.parametrize("body", [b"[" * 3000 + b"]" * 3000, b"[" * 500 + b"]" * 500], ids=["past-recursion", "deep"])
async def test_deeply_nested_json_at_login_is_a_400(gateway: Running, body: bytes) -> None:
    # Small enough for the login body cap: it is the nesting that must be refused.
    response = await _post(gateway, "/api/v1/auth/login", body, token=None)
    _problem(response)
    assert "nests deeper" in response.json()["detail"]


@pytest.mark.parametrize("path", WRITE_PATHS)
@pytest.mark.parametrize("body", [NESTED_LIST, NESTED_OBJECT], ids=["list", "object"])
async def test_deeply_nested_json_on_a_write_endpoint_is_a_400(gateway: Running, path: str, body: bytes) -> None:
    _problem(await _post(gateway, path, body))


@pytest.mark.parametrize("path", [*WRITE_PATHS, "/api/v1/auth/login"])
async def test_an_integer_past_pythons_digit_limit_is_a_400(gateway: Running, path: str) -> None:
    response = await _post(gateway, path, b'{"name": ' + HUGE_INT + b"}", token=None if "login" in path else TOKEN)
    _problem(response)
    assert "digits" in response.json()["detail"] or "number" in response.json()["detail"]


async def test_a_token_expiry_past_the_calendar_is_a_400(gateway: Running) -> None:
    response = await gateway.api.post("/api/v1/tokens", json={"name": "far", "servers": "*", "expires_in": 99999999999999})
    _problem(response)
    assert "expires_in" in response.json()["detail"]


@pytest.mark.parametrize("host", ["xn--a.example", "a" * 64 + ".example", "ex\u00e4mple\u200d.com", "[::1"])
async def test_an_upstream_url_with_an_impossible_host_is_a_400(gateway: Running, host: str) -> None:
    body = {"name": "badhost", "transport": "streamable-http", "url": f"http://{host}/mcp"}
    _problem(await gateway.api.post("/api/v1/upstreams", json=body))


@pytest.mark.parametrize("era", ["legacy", "modern"])
@pytest.mark.parametrize("body", [NESTED_LIST, NESTED_OBJECT, b'{"jsonrpc":"2.0","id":' + HUGE_INT + b',"method":"tools/list"}'], ids=["list", "object", "huge-id"])
async def test_a_crushing_mcp_body_is_a_json_rpc_error(gateway: Running, era: str, body: bytes) -> None:
    headers = {**MCP_HEADERS, "authorization": f"Bearer {TOKEN}", **(MODERN if era == "modern" else {})}
    async with httpx2.AsyncClient(timeout=60) as http:
        response = await http.post(gateway.mcp_url("vs"), content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert "Traceback" not in response.text
    error = response.json()["error"]
    assert error["code"] in (-32700, -32600), error


async def _legacy_session(http: httpx2.AsyncClient, url: str) -> dict[str, str]:
    headers = {**MCP_HEADERS, "authorization": f"Bearer {TOKEN}"}
    opened = await http.post(url, json=INITIALIZE, headers=headers)
    assert opened.status_code == 200, opened.text
    headers |= {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    return headers


@pytest.mark.parametrize("era", ["legacy", "modern"])
async def test_deeply_nested_tool_arguments_are_refused_before_they_reach_the_shared_upstream(gateway: Running, era: str) -> None:
    # 500 levels parse in Python but crash the upstream's parser: one caller would take the shared
    # upstream process down for everyone. (The SDK client will not even send it: raw requests.)
    nested = "[" * 500 + '"x"' + "]" * 500
    meta = '"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}},'
    head = '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{' + (meta if era == "modern" else "")
    body = head + '"name":"fx__echo","arguments":{"text":' + nested + "}}}"
    async with gateway.client("vs") as client:
        before = (await client.call_tool("fx__pid", {})).content[0].text
    async with httpx2.AsyncClient(timeout=60) as http:
        if era == "modern":
            headers = {**MCP_HEADERS, "authorization": f"Bearer {TOKEN}", **MODERN, "mcp-method": "tools/call", "mcp-name": "fx__echo"}
        else:
            headers = await _legacy_session(http, gateway.mcp_url("vs"))
        response = await http.post(gateway.mcp_url("vs"), content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert "nests deeper" in response.json()["error"]["message"]
    async with gateway.client("vs") as client:
        assert (await client.call_tool("fx__pid", {})).content[0].text == before  # the same process, alive


async def test_deeply_nested_arguments_on_an_http_sse_session_are_refused_too(gateway: Running) -> None:
    # The old HTTP+SSE transport's POST (`/servers/{name}/messages/`) reads bodies of its own: the
    # same depth rule holds there, before the SDK parses the message or the upstream sees it.

    nested = "[" * 100 + '"x"' + "]" * 100
    body = '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"fx__echo","arguments":{"text":' + nested + "}}}"
    async with sse_session(gateway, "vs", TOKEN) as session, httpx2.AsyncClient(timeout=30) as http:
        headers = {**MCP_HEADERS, "authorization": f"Bearer {TOKEN}"}
        initialize = await http.post(session.messages_url, json=INITIALIZE, headers=headers)
        assert initialize.status_code == 202, initialize.text
        await session.next_message()
        await http.post(session.messages_url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
        response = await http.post(session.messages_url, content=body, headers=headers)
        assert response.status_code == 400, response.text
        assert "nests deeper" in response.json()["error"]["message"]
        limit = Settings.model_fields["max_body_bytes"].default
        too_large = await http.post(session.messages_url, content=b" " * (limit + 1), headers=headers)
        assert too_large.status_code == 413, too_large.text


BAD_IDS = {"float": 1.5, "null": None, "true": True, "object": {}, "list": [1]}


@pytest.mark.parametrize("request_id", BAD_IDS.values(), ids=BAD_IDS.keys())
@pytest.mark.parametrize("session", ["on-a-session", "without-one"])
async def test_a_request_with_an_id_that_is_not_a_string_or_integer_is_answered(gateway: Running, request_id: object, session: str) -> None:
    # The SDK takes such a message for a notification: a 202 and no answer ever, so the client hangs.
    async with httpx2.AsyncClient(timeout=30) as http:
        if session == "on-a-session":
            headers = await _legacy_session(http, gateway.mcp_url("vs"))
        else:
            headers = {**MCP_HEADERS, "authorization": f"Bearer {TOKEN}"}
        message = {"jsonrpc": "2.0", "id": request_id, "method": "tools/list"}
        response = await http.post(gateway.mcp_url("vs"), json=message, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == -32600


@pytest.mark.parametrize("request_id", BAD_IDS.values(), ids=BAD_IDS.keys())
async def test_a_bad_request_id_on_an_http_sse_session_is_answered(gateway: Running, request_id: object) -> None:
    async with sse_session(gateway, "vs", TOKEN) as session, httpx2.AsyncClient(timeout=30) as http:
        headers = {**MCP_HEADERS, "authorization": f"Bearer {TOKEN}"}
        message = {"jsonrpc": "2.0", "id": request_id, "method": "ping"}
        response = await http.post(session.messages_url, json=message, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == -32600
