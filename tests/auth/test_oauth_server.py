"""Bastion as an OAuth 2.1 authorization server, end to end over loopback HTTP: the SDK's own OAuth
client discovers it from a 401, registers (RFC 7591) or presents a Client ID Metadata Document, a
real user signs in on the consent page, and the tokens it gets work on that virtual server only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx2
import jwt
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route

from tests.auth.oauth_client import (
    REDIRECT_URI,
    Browser,
    Pkce,
    SdkClient,
    authorize_url,
    code_for,
    hidden_fields,
    query,
    register,
    serve_public,
    token_request,
    tokens_for,
)
from tests.e2e.test_token_scopes import INITIALIZE, MCP_HEADERS
from tests.harness import Running, postgres_database, serve_asgi, stdio_fixture
from tests.identity import make_user

pytestmark = pytest.mark.anyio

DEV = "dev@example.com"


async def populate(running: Running) -> None:
    await running.register(stdio_fixture("fx"))
    await running.create_server({"name": "vs1", "upstreams": ["fx"], "visibility": "public"})
    await running.create_server({"name": "vs2", "upstreams": ["fx"], "visibility": "public"})
    await running.create_server({"name": "hidden", "upstreams": ["fx"]})
    await make_user(running, DEV, "developer")


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Running]:
    async with serve_public(f"sqlite+aiosqlite:///{tmp_path}/b.db") as running:
        await populate(running)
        yield running


@pytest.fixture
async def documents_on_loopback(tmp_path: Path) -> AsyncIterator[Running]:
    """A gateway that fetches Client ID Metadata Documents from loopback, where these tests serve
    them (a test-only setting: by default a document is fetched from public addresses only)."""
    async with serve_public(f"sqlite+aiosqlite:///{tmp_path}/b.db", oauth_client_metadata_allow_private=True) as running:
        await populate(running)
        yield running


@pytest.fixture(params=["sqlite", "postgres"])
async def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Running]:
    """The same on SQLite and on the real PostgreSQL: single use and rotation are the database's doing."""
    if request.param == "sqlite":
        async with serve_public(f"sqlite+aiosqlite:///{tmp_path}/b.db") as running:
            await populate(running)
            yield running
    else:
        async with postgres_database() as url, serve_public(url) as running:
            await populate(running)
            yield running


async def initialize(gateway: Running, server: str, token: str | None) -> httpx2.Response:
    headers = dict(MCP_HEADERS)
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    async with httpx2.AsyncClient(timeout=30) as http:
        return await http.post(gateway.mcp_url(server), json=INITIALIZE, headers=headers)


async def use_tools(url: str, auth: httpx2.Auth, mode: str) -> str:
    http = httpx2.AsyncClient(auth=auth, timeout=httpx2.Timeout(30.0, read=None))
    async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        assert "fx__echo" in names
        result = await client.call_tool("fx__echo", {"text": "through oauth"})
        return str(result.content[0].text)  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_the_sdk_client_registers_signs_in_and_calls_tools(gateway: Running, mode: str) -> None:
    client = SdkClient(gateway.mcp_url("vs1"), Browser(DEV))
    assert await use_tools(gateway.mcp_url("vs1"), client.provider(), mode) == "through oauth"
    assert client.redirects == 1
    assert client.result is not None and client.result.iss == gateway.base_url  # RFC 9207
    tokens = client.storage.tokens
    assert tokens is not None and tokens.refresh_token and tokens.scope == "mcp"
    claims = jwt.decode(tokens.access_token, options={"verify_signature": False})
    assert claims["aud"] == gateway.mcp_url("vs1") and claims["iss"] == gateway.base_url
    assert claims["client_id"] == client.storage.client_info.client_id  # type: ignore[union-attr]
    assert jwt.get_unverified_header(tokens.access_token)["alg"] == "ES256"
    assert (await initialize(gateway, "vs2", tokens.access_token)).status_code == 403


async def test_a_client_identified_by_its_metadata_document_completes_the_flow(documents_on_loopback: Running) -> None:
    gateway = documents_on_loopback
    document: dict[str, Any] = {}

    async def serve_document(_: Request) -> JSONResponse:
        return JSONResponse(document)

    async with serve_asgi(Starlette(routes=[Route("/client.json", serve_document)])) as site:
        url = f"{site}/client.json"
        document.update(
            client_id=url,
            client_name="Metadata Document Client",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        )
        client = SdkClient(gateway.mcp_url("vs1"), Browser(DEV))
        assert await use_tools(gateway.mcp_url("vs1"), client.provider(url), "legacy") == "through oauth"
        assert client.storage.client_info is not None and client.storage.client_info.client_id == url
        token = client.storage.tokens.access_token  # type: ignore[union-attr]
        assert jwt.decode(token, options={"verify_signature": False})["client_id"] == url


async def test_a_metadata_document_that_names_another_client_is_refused(documents_on_loopback: Running) -> None:
    gateway = documents_on_loopback
    async def serve_document(_: Request) -> JSONResponse:
        return JSONResponse({"client_id": "https://evil.example/client.json", "redirect_uris": [REDIRECT_URI]})

    async with serve_asgi(Starlette(routes=[Route("/client.json", serve_document)])) as site:
        client = {"client_id": f"{site}/client.json"}
        async with httpx2.AsyncClient() as http:
            response = await http.get(authorize_url(gateway, client, "vs1", Pkce()))
        assert response.status_code == 400 and response.json()["error"] == "invalid_request"


async def test_metadata_documents_that_redirect_are_too_large_or_list_other_redirects_are_refused(
    documents_on_loopback: Running,
) -> None:
    gateway = documents_on_loopback
    async def moved(_: Request) -> RedirectResponse:
        return RedirectResponse("/client.json")

    async def huge(request: Request) -> JSONResponse:
        url = str(request.url)
        return JSONResponse({"client_id": url, "redirect_uris": [REDIRECT_URI], "padding": "x" * 100_000})

    async def elsewhere(request: Request) -> JSONResponse:
        return JSONResponse({"client_id": str(request.url), "redirect_uris": ["http://127.0.0.1:9/other"]})

    routes = [Route("/moved.json", moved), Route("/huge.json", huge), Route("/elsewhere.json", elsewhere)]
    async with serve_asgi(Starlette(routes=routes)) as site, httpx2.AsyncClient() as http:
        for path in ("/moved.json", "/huge.json", "/elsewhere.json"):
            response = await http.get(authorize_url(gateway, {"client_id": f"{site}{path}"}, "vs1", Pkce()))
            assert response.status_code == 400 and response.json()["error"] == "invalid_request", path


async def test_the_challenge_and_metadata_lead_to_bastions_authorization_server(gateway: Running) -> None:
    refused = await initialize(gateway, "vs1", None)
    assert refused.status_code == 401
    prm_url = f"{gateway.base_url}/.well-known/oauth-protected-resource/servers/vs1/mcp"
    assert f'resource_metadata="{prm_url}"' in refused.headers["www-authenticate"]
    async with httpx2.AsyncClient() as http:
        prm = (await http.get(prm_url)).json()
        assert prm["authorization_servers"] == [gateway.base_url] and prm["resource"] == gateway.mcp_url("vs1")
        meta = (await http.get(f"{gateway.base_url}/.well-known/oauth-authorization-server")).json()
        assert meta["issuer"] == gateway.base_url
        assert meta["code_challenge_methods_supported"] == ["S256"]
        assert meta["authorization_response_iss_parameter_supported"] is True
        assert meta["client_id_metadata_document_supported"] is True
        jwks = (await http.get(meta["jwks_uri"])).json()
    assert [k["alg"] for k in jwks["keys"]] == ["ES256"] and all("d" not in k for k in jwks["keys"])


async def test_refresh_tokens_rotate_and_a_reused_one_revokes_the_family(any_db: Running) -> None:
    gateway = any_db
    client = await register(gateway)
    first = await tokens_for(gateway, client, "vs1", DEV)
    rotated = await token_request(gateway, client, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await initialize(gateway, "vs1", second["access_token"])).status_code == 200
    replay = await token_request(gateway, client, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    # The thief's replay also locks out the current holder: the whole family is revoked.
    after = await token_request(gateway, client, grant_type="refresh_token", refresh_token=second["refresh_token"])
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"


async def test_a_refresh_token_works_only_for_its_client(gateway: Running) -> None:
    owner, other = await register(gateway), await register(gateway)
    tokens = await tokens_for(gateway, owner, "vs1", DEV)
    stolen = await token_request(gateway, other, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    wrong_secret = {**owner, "client_secret": "0" * 64}
    refused = await token_request(
        gateway, wrong_secret, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"


async def test_a_token_for_one_virtual_server_is_refused_by_another(gateway: Running) -> None:
    tokens = await tokens_for(gateway, await register(gateway), "vs1", DEV)
    assert (await initialize(gateway, "vs1", tokens["access_token"])).status_code == 200
    assert (await initialize(gateway, "vs2", tokens["access_token"])).status_code == 403


async def test_pkce_with_a_wrong_verifier_is_refused_and_a_code_works_once(any_db: Running) -> None:
    gateway = any_db
    client, pkce = await register(gateway), Pkce()
    code = await code_for(gateway, client, "vs1", DEV, pkce)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    wrong = await token_request(gateway, client, **form, code_verifier=Pkce().verifier)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    right = await token_request(gateway, client, **form, code_verifier=pkce.verifier)
    assert right.status_code == 200, right.text
    again = await token_request(gateway, client, **form, code_verifier=pkce.verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


async def test_a_code_is_bound_to_its_client(gateway: Running) -> None:
    owner, other, pkce = await register(gateway), await register(gateway), Pkce()
    code = await code_for(gateway, owner, "vs1", DEV, pkce)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": pkce.verifier,
    }
    response = await token_request(gateway, other, **form)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_deny_sends_access_denied_back_to_the_client(gateway: Running) -> None:
    url = authorize_url(gateway, await register(gateway), "vs1", Pkce(), state="s-1")
    answer = await Browser(DEV, action="deny").authorize(url)
    assert answer.status_code == 303
    assert query(answer.headers["location"]) == {"error": "access_denied", "state": "s-1", "iss": gateway.base_url}


async def test_a_deactivated_user_cannot_consent(gateway: Running) -> None:
    user = await make_user(gateway, "gone@example.com", "developer")
    assert (await gateway.api.patch(f"/api/v1/users/{user['id']}", json={"active": False})).status_code == 200
    answer = await Browser("gone@example.com").authorize(authorize_url(gateway, await register(gateway), "vs1", Pkce()))
    assert answer.status_code == 403 and "location" not in answer.headers


async def test_a_wrong_password_shows_the_form_again(gateway: Running) -> None:
    answer = await Browser(DEV, password="wrong").authorize(
        authorize_url(gateway, await register(gateway), "vs1", Pkce())
    )
    assert answer.status_code == 401 and "location" not in answer.headers
    assert hidden_fields(answer.text)["csrf"]


async def test_a_user_who_may_not_see_the_server_cannot_consent(gateway: Running) -> None:
    answer = await Browser(DEV).authorize(authorize_url(gateway, await register(gateway), "hidden", Pkce()))
    assert answer.status_code == 403 and "location" not in answer.headers
    await make_user(gateway, "viewer@example.com", "viewer")
    answer = await Browser("viewer@example.com").authorize(
        authorize_url(gateway, await register(gateway), "vs1", Pkce())
    )
    assert answer.status_code == 403 and "location" not in answer.headers


async def test_the_consent_form_needs_its_csrf_token_and_cookie(gateway: Running) -> None:
    url = authorize_url(gateway, await register(gateway), "vs1", Pkce())
    browser = Browser(DEV)
    async with httpx2.AsyncClient() as http:
        consent_url, page = await browser.open_consent(http, url)
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        fields = hidden_fields(page.text)
        post = consent_url.split("?")[0]
        answer = {"email": DEV, "password": browser.password, "action": "allow"}
        assert (await http.post(post, data={**answer, "request": fields["request"]})).status_code == 403
        wrong = {**answer, "request": fields["request"], "csrf": "x" + fields["csrf"]}
        assert (await http.post(post, data=wrong)).status_code == 403
        async with httpx2.AsyncClient() as no_cookie:
            assert (await no_cookie.post(post, data={**answer, **fields})).status_code == 403
        accepted = await http.post(post, data={**answer, **fields})
        assert accepted.status_code == 303 and "code" in query(accepted.headers["location"])
        # Answered once: the same form cannot mint a second code.
        assert (await http.post(post, data={**answer, **fields})).status_code == 400


async def test_revoking_a_refresh_token_ends_its_family_and_an_access_token_stops_at_once(gateway: Running) -> None:
    client = await register(gateway)
    tokens = await tokens_for(gateway, client, "vs1", DEV)
    async with httpx2.AsyncClient(base_url=gateway.base_url) as http:
        form = {"client_id": client["client_id"], "client_secret": client["client_secret"]}
        assert (await http.post("/revoke", data={**form, "token": tokens["access_token"]})).status_code == 200
        assert (await initialize(gateway, "vs1", tokens["access_token"])).status_code == 401
        refreshed = await token_request(
            gateway, client, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
        )
        assert refreshed.status_code == 400
    other = await tokens_for(gateway, client, "vs1", DEV)
    async with httpx2.AsyncClient(base_url=gateway.base_url) as http:
        form = {"client_id": client["client_id"], "client_secret": client["client_secret"]}
        revoked = await http.post(
            "/revoke", data={**form, "token": other["refresh_token"], "token_type_hint": "refresh_token"}
        )
        assert revoked.status_code == 200
    refreshed = await token_request(gateway, client, grant_type="refresh_token", refresh_token=other["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"


async def test_a_public_client_revokes_its_tokens_without_a_secret(gateway: Running) -> None:
    """RFC 7009 with a public client (token_endpoint_auth_method none, how MCP clients register): it
    has no secret to send. The SDK's revocation request required the field: every public client's
    sign-out was a 400 and left its refresh token alive for 30 days."""
    client = await register(gateway, token_endpoint_auth_method="none")
    assert not client.get("client_secret")
    tokens = await tokens_for(gateway, client, "vs1", DEV)
    other = await tokens_for(gateway, client, "vs1", DEV)
    async with httpx2.AsyncClient(base_url=gateway.base_url) as http:
        for token, hint in ((tokens["access_token"], None), (other["refresh_token"], "refresh_token")):
            form = {"client_id": client["client_id"], "token": token, **({"token_type_hint": hint} if hint else {})}
            revoked = await http.post("/revoke", data=form)
            assert revoked.status_code == 200, revoked.text
            assert revoked.headers["cache-control"] == "no-store"
        assert (await initialize(gateway, "vs1", tokens["access_token"])).status_code == 401
        refreshed = await token_request(gateway, client, grant_type="refresh_token", refresh_token=other["refresh_token"])
        assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
        # Still refused: no token, an unknown client, a confidential client without its secret.
        missing = await http.post("/revoke", data={"client_id": client["client_id"]})
        assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
        unknown = await http.post("/revoke", data={"client_id": "nobody", "token": "x"})
        assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_client"
        confidential = await register(gateway)
        kept = await tokens_for(gateway, confidential, "vs1", DEV)
        bare = await http.post("/revoke", data={"client_id": confidential["client_id"], "token": kept["access_token"]})
        assert bare.status_code == 401
    assert (await initialize(gateway, "vs1", kept["access_token"])).status_code == 200


async def test_a_token_request_naming_another_resource_is_invalid_target(gateway: Running) -> None:
    """RFC 8707: a code or refresh token authorized for vs1, exchanged with `resource` naming vs2, was
    answered 200 (with a vs1 token). It is invalid_target, and neither the code nor the refresh token
    is spent by the refused request."""
    client, pkce = await register(gateway), Pkce()
    code = await code_for(gateway, client, "vs1", DEV, pkce)
    vs1, vs2 = f"{gateway.base_url}/servers/vs1/mcp", f"{gateway.base_url}/servers/vs2/mcp"
    exchange = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": pkce.verifier}
    wrong = await token_request(gateway, client, **exchange, resource=vs2)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_target", wrong.text
    tokens = (await token_request(gateway, client, **exchange, resource=vs1)).json()
    assert "access_token" in tokens
    wrong = await token_request(gateway, client, grant_type="refresh_token", refresh_token=tokens["refresh_token"], resource=vs2)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_target"
    # The same server spelled another way (a client may add a slash at a refresh) is the same resource.
    refreshed = await token_request(gateway, client, grant_type="refresh_token", refresh_token=tokens["refresh_token"], resource=vs1 + "/")
    assert refreshed.status_code == 200, refreshed.text


async def test_a_resource_that_is_not_a_virtual_server_is_refused(gateway: Running) -> None:
    client, pkce = await register(gateway), Pkce()
    url = authorize_url(gateway, client, "vs1", pkce).replace("%2Fservers%2Fvs1%2Fmcp", "%2Fapi%2Fv1%2Fusers")
    async with httpx2.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 302
    assert query(response.headers["location"])["error"] == "invalid_target"


async def test_a_deactivated_users_tokens_stop_working(gateway: Running) -> None:
    user = await make_user(gateway, "leaver@example.com", "developer")
    client = await register(gateway)
    tokens = await tokens_for(gateway, client, "vs1", "leaver@example.com")
    assert (await initialize(gateway, "vs1", tokens["access_token"])).status_code == 200
    assert (await gateway.api.patch(f"/api/v1/users/{user['id']}", json={"active": False})).status_code == 200
    assert (await initialize(gateway, "vs1", tokens["access_token"])).status_code == 401
    refreshed = await token_request(gateway, client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("change", "error"),
    [({"code_challenge_method": "plain"}, "invalid_request"), ({"scope": "admin"}, "invalid_scope"), ({"resource": "https://evil.example/mcp"}, "invalid_target")],
    ids=["plain-pkce", "unknown-scope", "foreign-resource"],
)
async def test_error_redirects_name_the_issuer_too(gateway: Running, change: dict[str, str], error: str) -> None:
    # RFC 9207: all authorization responses, error responses included, carry `iss`.
    url = authorize_url(gateway, await register(gateway), "vs1", Pkce(), state="s-2")
    base, _, params = url.partition("?")
    url = f"{base}?{urlencode({**dict(parse_qsl(params)), **change})}"
    async with httpx2.AsyncClient(timeout=30) as http:
        answer = await http.get(url)
    assert answer.status_code in (302, 303), answer.text
    found = query(answer.headers["location"])
    assert found["error"] == error and found["state"] == "s-2" and found["iss"] == gateway.base_url


async def test_a_client_secret_basic_client_needs_no_client_id_in_the_form(gateway: Running) -> None:
    """RFC 6749 2.3.1: with HTTP Basic the client_id is in the header; the form need not repeat it.
    It was refused 401 "Missing client_id", at /token and at /revoke."""
    client = await register(gateway, token_endpoint_auth_method="client_secret_basic")
    basic = httpx2.BasicAuth(client["client_id"], client["client_secret"])
    pkce = Pkce()
    code = await code_for(gateway, client, "vs1", DEV, pkce)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": pkce.verifier}
    async with httpx2.AsyncClient(base_url=gateway.base_url) as http:
        # A form client_id that is not the Basic one is refused, before the code is spent.
        other = await http.post("/token", data={**form, "client_id": (await register(gateway))["client_id"]}, auth=basic)
        assert other.status_code == 401 and other.json()["error"] == "invalid_client"
        issued = await http.post("/token", data=form, auth=basic)
        assert issued.status_code == 200, issued.text
        tokens = issued.json()
        refreshed = await http.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}, auth=basic)
        assert refreshed.status_code == 200, refreshed.text
        wrong = httpx2.BasicAuth(client["client_id"], "0" * 64)
        refused = await http.post("/revoke", data={"token": refreshed.json()["access_token"]}, auth=wrong)
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
        revoked = await http.post("/revoke", data={"token": refreshed.json()["access_token"]}, auth=basic)
        assert revoked.status_code == 200, revoked.text
    assert (await initialize(gateway, "vs1", refreshed.json()["access_token"])).status_code == 401
