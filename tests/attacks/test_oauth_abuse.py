"""Attack class: abuse of Bastion's own authorization server by the clients it lets in. A replayed
authorization code revokes what the code issued (someone else holds it); a client cannot register a
redirect URI that runs script, carries a fragment or sends the code in clear over the network; and
the consent page shows a client's self-chosen name as unverified, with where the code will go."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.auth.oauth_client import (
    REDIRECT_URI,
    Pkce,
    authorize_url,
    code_for,
    register,
    serve_public,
    token_request,
)
from tests.auth.test_oauth_server import initialize, populate
from tests.harness import Running, postgres_database, serve_asgi, stdio_fixture
from tests.identity import make_user

pytestmark = pytest.mark.anyio

DEV = "dev@example.com"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    tmp_path: Path = tmp_path_factory.mktemp("oauth-abuse")
    # Its metadata documents are served on loopback (a test-only setting).
    async with serve_public(f"sqlite+aiosqlite:///{tmp_path}/b.db", oauth_client_metadata_allow_private=True) as running:
        await running.register(stdio_fixture("fx"))
        await running.create_server({"name": "vs1", "upstreams": ["fx"], "visibility": "public"})
        await make_user(running, DEV, "developer")
        yield running


async def test_a_replayed_authorization_code_revokes_what_it_issued(gateway: Running) -> None:
    await replay_code(gateway)


@pytest.mark.postgres
async def test_a_replayed_authorization_code_revokes_what_it_issued_on_postgres() -> None:
    """The code's single use and its memory of what it issued are the database's doing."""
    async with postgres_database() as url, serve_public(url) as gateway:
        await populate(gateway)
        await replay_code(gateway)


async def replay_code(gateway: Running) -> None:
    client = await register(gateway)
    pkce = Pkce()
    code = await code_for(gateway, client, "vs1", DEV, pkce)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": pkce.verifier}
    first = await token_request(gateway, client, **form)
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert (await initialize(gateway, "vs1", tokens["access_token"])).status_code == 200
    replay = await token_request(gateway, client, **form)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert (await initialize(gateway, "vs1", tokens["access_token"])).status_code == 401
    refreshed = await token_request(gateway, client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"


BAD_REDIRECTS = [
    "javascript:alert(document.cookie)//",
    "data:text/html,<script>alert(1)</script>",
    "https://app.example/callback#fragment",
    "http://app.example/callback",  # the code in clear text over the network
    "vbscript:msgbox(1)",
    "mailto:victim@example.com",  # not a redirect: the browser cannot be sent back on it
    "urn:ietf:wg:oauth:2.0:oob",  # out of band: no redirect at all, dropped by OAuth 2.1
    "https://app.example/" + "a" * 2048,  # longer than /authorize accepts: a client that could never sign in
]


@pytest.mark.parametrize("uri", BAD_REDIRECTS)
async def test_dangerous_redirect_uris_are_refused_at_registration(gateway: Running, uri: str) -> None:
    body = {"client_name": "x", "redirect_uris": [uri], "token_endpoint_auth_method": "none"}
    async with httpx2.AsyncClient(base_url=gateway.base_url) as http:
        response = await http.post("/register", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] in ("invalid_redirect_uri", "invalid_client_metadata")


async def test_good_redirect_uris_are_accepted(gateway: Running) -> None:
    for uri in ("https://app.example/cb", "http://127.0.0.1:8123/cb", "http://localhost/cb", "com.example.app:/oauth"):
        await register(gateway, redirect_uris=[uri])


async def test_a_metadata_document_with_a_dangerous_redirect_uri_is_refused(gateway: Running) -> None:
    async def document(request: Request) -> JSONResponse:
        return JSONResponse({"client_id": str(request.url), "redirect_uris": ["javascript:alert(1)//"]})

    async with serve_asgi(Starlette(routes=[Route("/client.json", document)])) as site:
        client: dict[str, Any] = {"client_id": f"{site}/client.json"}
        params = authorize_url(gateway, client, "vs1", Pkce()).replace(
            "redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback", "redirect_uri=javascript%3Aalert%281%29%2F%2F"
        )
        async with httpx2.AsyncClient() as http:
            response = await http.get(params)
    assert response.status_code == 400, response.text


async def test_the_consent_page_marks_a_clients_own_name_as_unverified(gateway: Running) -> None:
    client = await register(
        gateway, client_name="Bastion <b>Official</b> Admin", client_uri="https://trusted.example/"
    )
    async with httpx2.AsyncClient(timeout=30) as http:
        started = await http.get(authorize_url(gateway, client, "vs1", Pkce()))
        page = (await http.get(started.headers["location"])).text
    assert "<b>Official</b>" not in page and "&lt;b&gt;Official&lt;/b&gt;" in page
    assert "unverified" in page.lower()
    assert "127.0.0.1" in page  # the host the code will be sent to


@pytest.mark.parametrize(
    "one, other, same",
    [
        ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:fffe", True),  # one host's /64: one address
        ("2001:db8:1:2::1", "2001:db8:1:3::1", False),
        ("::ffff:198.51.100.7", "198.51.100.7", True),
        ("198.51.100.7", "198.51.100.8", False),
    ],
)
def test_a_per_address_limit_counts_an_ipv6_host_by_its_64(one: str, other: str, same: bool) -> None:
    """/authorize and registration were limited per exact address: one IPv6 host holds a /64, so
    its requests came from as many addresses as it liked, each with its own allowance."""
    from bastion.web.oauth_server import address_bucket

    assert (address_bucket(one) == address_bucket(other)) is same
