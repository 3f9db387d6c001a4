"""Client ID Metadata Documents are fetched only from addresses the SSRF rules allow: https, or
http on loopback when the admin allows private addresses; and never with credentials in the URL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from mcp.shared.auth import OAuthClientInformationFull
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bastion.auth.oauth.clients import Clients
from bastion.outbound import Outbound, Rules
from bastion.store.memory_oauth import MemoryOAuthRepo
from tests.harness import serve_asgi

pytestmark = pytest.mark.anyio


@pytest.fixture
async def site() -> AsyncIterator[tuple[str, list[str]]]:
    fetched: list[str] = []

    async def document(request: Request) -> JSONResponse:
        fetched.append(request.url.path)
        return JSONResponse({"client_id": str(request.url), "redirect_uris": ["http://127.0.0.1:9/cb"]})

    async with serve_asgi(Starlette(routes=[Route("/client.json", document)])) as url:
        yield url, fetched


async def test_a_loopback_document_is_read_only_when_private_addresses_are_allowed(site: tuple[str, list[str]]) -> None:
    url, fetched = site
    strict = Clients(MemoryOAuthRepo(), Outbound(Rules(allow_private=False)))
    assert await strict.get(f"{url}/client.json") is None
    assert fetched == []  # refused before any request was made
    relaxed = Clients(MemoryOAuthRepo(), Outbound(Rules(allow_private=True)))
    client = await relaxed.get(f"{url}/client.json")
    assert client is not None and client.client_id == f"{url}/client.json"
    assert client.token_endpoint_auth_method == "none" and client.scope == "mcp"


@pytest.mark.parametrize(
    "client_id",
    [
        "https://127.0.0.1:1/client.json",
        "http://example.com/client.json",
        "https://127.0.0.1/",
        "https://u:p@127.0.0.1/c",
    ],
)
async def test_unsafe_metadata_urls_are_refused_without_a_request(client_id: str) -> None:
    assert await Clients(MemoryOAuthRepo(), Outbound(Rules(allow_private=False))).get(client_id) is None


async def test_a_registered_client_keeps_only_the_hash_of_its_secret() -> None:
    repo = MemoryOAuthRepo()
    clients = Clients(repo, Outbound(Rules(allow_private=False)))
    info = OAuthClientInformationFull(
        client_id="c1",
        client_secret="s3cret-value",
        redirect_uris=["http://127.0.0.1:9/cb"],  # type: ignore[list-item]
        token_endpoint_auth_method="client_secret_post",
    )
    await clients.register(info)
    stored = await repo.get_client("c1")
    loaded = await clients.get("c1")
    assert stored is not None and stored.secret_hash and "s3cret-value" not in str(stored.model_dump())
    assert loaded is not None and loaded.client_secret is None and loaded.redirect_uris == info.redirect_uris
