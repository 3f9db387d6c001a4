"""Attack class: a lone UTF-16 surrogate in JSON. The text `"\\ud800"` is valid JSON syntax and
`json.loads` yields a str that UTF-8 cannot encode, so it crashed later (SQLite's driver raised
UnicodeEncodeError binding a new user's email: a 500). Every body from outside that holds one is
refused as invalid JSON where it is parsed: problem+json 400 on REST, -32700 Parse error on MCP (as
the MCP SDK's own JSON parser refuses it), and nothing is stored or sent upstream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.attacks.test_sse_sessions import sse_session
from tests.auth.oauth_client import serve_public
from tests.e2e.test_token_scopes import INITIALIZE, MCP_HEADERS
from tests.harness import TOKEN, Running, open_raw_session, serve, session_headers, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
LONE = "a\ud800b"  # json.dumps writes it as the escape a\ud800b: what an attacker sends


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("lone-surrogates")
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp}/b.db")) as running:
        await running.register(stdio_fixture("fx"))
        await running.create_server({"name": "vs", "upstreams": ["fx"], "visibility": "public"})
        yield running


def _raw(value: Any) -> bytes:
    """JSON text as a client writes it: json.dumps escapes the surrogate (httpx's json= cannot send it)."""
    return json.dumps(value).encode()


async def _post(gateway: Running, method: str, path: str, body: bytes, token: str | None = TOKEN) -> httpx2.Response:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=60) as http:
        return await http.request(method, path, content=body, headers=headers)


def _refused_as_invalid_json(response: httpx2.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    detail = response.json()["detail"]
    assert "not valid JSON" in detail and "surrogate" in detail and "\\ud800" in detail, detail
    response.content.decode()  # the answer itself is text


async def test_a_new_users_email_with_a_lone_surrogate_is_a_400_and_stores_nothing(gateway: Running) -> None:
    body = b'{"email":"a\\ud800@x.io","password":"0123456789abcdefXYZ!","role":"viewer"}'
    _refused_as_invalid_json(await _post(gateway, "POST", "/api/v1/users", body))
    listed = await gateway.api.get("/api/v1/users")
    assert listed.status_code == 200, listed.text
    assert not [u for u in listed.json()["items"] if u["email"].startswith("a")]


WRITES = {
    "server-create": ("POST", "/api/v1/servers", {"name": "sv", "upstreams": ["fx"], "description": LONE}),
    "server-update": ("PATCH", "/api/v1/servers/vs", {"description": LONE}),
    "upstream-create": ("POST", "/api/v1/upstreams", {"name": "up", "transport": "streamable-http", "url": "http://127.0.0.1:9/mcp", "headers": {"x-note": LONE}}),
    "upstream-update": ("PATCH", "/api/v1/upstreams/fx", {"env": {"NOTE": LONE}}),
    "upstream-key": ("PATCH", "/api/v1/upstreams/fx", {"env": {LONE: "x"}}),
    "team": ("POST", "/api/v1/teams", {"name": "t" + LONE}),
    "token": ("POST", "/api/v1/tokens", {"name": LONE, "servers": "*"}),
    "user-update": ("PATCH", "/api/v1/users/nobody", {"display_name": LONE}),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
async def test_a_write_with_a_lone_surrogate_is_a_400(gateway: Running, write: tuple[str, str, dict[str, Any]]) -> None:
    method, path, body = write
    _refused_as_invalid_json(await _post(gateway, method, path, _raw(body)))
    for listing in ("/api/v1/servers", "/api/v1/upstreams", "/api/v1/teams", "/api/v1/tokens"):
        response = await gateway.api.get(listing)
        assert response.status_code == 200, response.text
        assert "\\ud800" not in response.text


async def test_a_sign_in_with_a_lone_surrogate_is_a_400(gateway: Running) -> None:
    body = _raw({"email": "a\ud800@x.io", "password": "0123456789abcdefXYZ!"})
    _refused_as_invalid_json(await _post(gateway, "POST", "/api/v1/auth/login", body, token=None))


async def test_a_rest_facade_call_with_a_lone_surrogate_is_a_400(gateway: Running) -> None:
    _refused_as_invalid_json(await _post(gateway, "POST", "/api/v1/servers/vs/tools/fx__echo", _raw({"text": LONE})))


async def test_a_configuration_import_with_a_lone_surrogate_is_a_400(gateway: Running) -> None:
    # YAML (and JSON read as YAML) allows the escape too.
    for body in (b'servers:\n  - name: cfg\n    description: "a\\ud800"\n', _raw({"servers": [{"name": "cfg", "description": LONE}]})):
        response = await _post(gateway, "POST", "/api/v1/config?dry_run=true", body)
        assert response.status_code == 400, response.text
        assert "surrogate" in response.json()["detail"]


def _tool_call(name: str, arguments: dict[str, Any], modern: bool) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if modern:
        params["_meta"] = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
    return {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}


def _parse_error(response: httpx2.Response) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == -32700, error
    assert "surrogate" in error["message"], error


CALLS = {"arguments": ("fx__echo", {"text": LONE}), "tool-name": ("fx__echo" + LONE, {"text": "x"}), "key": ("fx__echo", {LONE: "x"})}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
async def test_a_modern_mcp_call_with_a_lone_surrogate_is_a_parse_error(gateway: Running, call: tuple[str, dict[str, Any]]) -> None:
    headers = {**MCP_HEADERS, "authorization": f"Bearer {TOKEN}", "mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": "fx__echo"}
    async with httpx2.AsyncClient(timeout=60) as http:
        response = await http.post(gateway.mcp_url("vs"), content=_raw(_tool_call(*call, modern=True)), headers=headers)
    _parse_error(response)


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
async def test_an_mcp_call_on_a_session_with_a_lone_surrogate_is_a_parse_error(gateway: Running, call: tuple[str, dict[str, Any]]) -> None:
    async with httpx2.AsyncClient(timeout=60) as http:
        session = await open_raw_session(http, gateway.mcp_url("vs"))
        response = await http.post(gateway.mcp_url("vs"), content=_raw(_tool_call(*call, modern=False)), headers=session_headers(session))
        _parse_error(response)
        ok = await http.post(gateway.mcp_url("vs"), content=_raw(_tool_call("fx__echo", {"text": "\U0001f600 \\ud800"}, modern=False)), headers=session_headers(session))
    assert ok.status_code == 200, ok.text
    assert "\U0001f600 \\ud800" in ok.text or "\\ud83d\\ude00 \\\\ud800" in ok.text  # a pair and an escaped backslash pass


async def test_an_mcp_call_on_an_http_sse_session_with_a_lone_surrogate_is_a_parse_error(gateway: Running) -> None:
    async with sse_session(gateway, "vs", TOKEN) as session, httpx2.AsyncClient(timeout=30) as http:
        headers = {**MCP_HEADERS, "authorization": f"Bearer {TOKEN}"}
        assert (await http.post(session.messages_url, json=INITIALIZE, headers=headers)).status_code == 202
        await session.next_message()
        await http.post(session.messages_url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
        response = await http.post(session.messages_url, content=_raw(_tool_call("fx__echo", {"text": LONE}, modern=False)), headers=headers)
    _parse_error(response)


async def test_a_utf8_encoded_surrogate_is_not_text_either(gateway: Running) -> None:
    # json.loads decodes bytes with "surrogatepass": the three bytes ED A0 80 became U+D800 too.
    encoded = b'{"email":"a\xed\xa0\x80@x.io","password":"0123456789abcdefXYZ!","role":"viewer"}'
    response = await _post(gateway, "POST", "/api/v1/users", encoded)
    assert response.status_code == 400, response.text
    headers = {**MCP_HEADERS, "authorization": f"Bearer {TOKEN}", "mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": "fx__echo"}
    body = _raw(_tool_call("fx__echo", {"text": "@"}, modern=True)).replace(b"@", b"\xed\xa0\x80")
    async with httpx2.AsyncClient(timeout=60) as http:
        mcp = await http.post(gateway.mcp_url("vs"), content=body, headers=headers)
    assert mcp.status_code == 400, mcp.text
    assert mcp.json()["error"]["code"] == -32700


async def test_oauth_registration_with_a_lone_surrogate_is_refused(tmp_path: Path) -> None:
    body = _raw({"client_name": LONE, "redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "none"})
    async with serve_public(f"sqlite+aiosqlite:///{tmp_path}/o.db") as gateway, httpx2.AsyncClient(base_url=gateway.base_url) as http:
        response = await http.post("/register", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text


def _form(charset: str | None) -> tuple[bytes, dict[str, str]]:
    """A sign-in form as multipart, its fields written as a client may write them for `charset`."""
    fields = {"email": "a\\ud800@example.com", "password": "not-the-password"}
    body = b"".join(
        f'--XX\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode() for name, value in fields.items()
    ) + b"--XX--\r\n"
    content_type = "multipart/form-data; boundary=XX" + (f"; charset={charset}" if charset else "")
    return body, {"content-type": content_type}


@pytest.mark.parametrize("path", ["/admin/login", "/token", "/api/v1/auth/login"])
async def test_a_multipart_form_in_a_charset_that_makes_surrogates_is_refused(gateway: Running, path: str) -> None:
    """Starlette decodes multipart fields with the charset the request names; unicode_escape turns
    the text a\\ud800 into a lone surrogate, and the sign-in page answered a plain 500 with it."""
    body, headers = _form("unicode_escape")
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=60) as http:
        refused = await http.post(path, content=body, headers={**headers, "origin": gateway.base_url})
        assert refused.status_code == 415, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "charset='unicode_escape' is not supported" in refused.json()["detail"]
        for charset in (None, "utf-8", '"UTF-8"'):  # what browsers send, and UTF-8 named: read as before
            body, headers = _form(charset)
            answered = await http.post(path, content=body, headers={**headers, "origin": gateway.base_url})
            assert answered.status_code not in (415, 500), answered.text
