"""Upstreams behind OAuth 2.0 client credentials: Bastion fetches its own token from a real loopback
token endpoint, caches it, sends it as a bearer to a real upstream that checks it, and fetches a new
one on expiry and once on a 401. The client secret stays sealed and write-only."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.types import ListRootsResult

from bastion.core.errors import UpstreamUnavailable
from bastion.core.models import OAuthClientCredentials
from bastion.upstream.oauth import ClientCredentialsToken
from tests.harness import TOKEN, http_fixture, serve, serve_asgi, settings_for
from tests.vault.oauth_upstream import OAuthWorld
from tests.vault.test_sealed_upstreams import stored_text, whoami

pytestmark = pytest.mark.anyio

CLIENT_SECRET = "cs-very-private-0123456789"


@asynccontextmanager
async def oauth_world(transport: str = "streamable-http", **kwargs: Any) -> AsyncIterator[tuple[OAuthWorld, str, str]]:
    """(world, upstream URL through the gate, token URL)."""
    with http_fixture(transport) as fx:
        world = OAuthWorld(f"http://127.0.0.1:{fx.port}", "bastion", CLIENT_SECRET, **kwargs)
        try:
            async with serve_asgi(world) as base:
                yield world, base + fx.url.removeprefix(f"http://127.0.0.1:{fx.port}"), f"{base}/token"
        finally:
            await world.aclose()


def oauth_body(name: str, transport: str, url: str, token_url: str, secret: str = CLIENT_SECRET) -> dict[str, Any]:
    auth = {
        "type": "oauth_client_credentials",
        "token_url": token_url,
        "client_id": "bastion",
        "client_secret": secret,
        "scope": "mcp:tools",
        "audience": "https://upstream.example",
    }
    return {"name": name, "transport": transport, "url": url, "auth": auth}


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_bastion_sends_its_own_cached_token_and_refetches_once_on_401(
    transport: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"sqlite+aiosqlite:///{tmp_path}/b.db"
    async with oauth_world(transport) as (world, upstream_url, token_url):
        async with serve(settings_for(url)) as gateway:
            created = await gateway.register(oauth_body("api", transport, upstream_url, token_url))
            assert created["auth"] == {
                "type": "oauth_client_credentials", "token_url": token_url, "client_id": "bastion",
                "client_secret": "********", "scope": "mcp:tools", "audience": "https://upstream.example",
            }
            await gateway.create_server({"name": "vs", "upstreams": ["api"]})
            for _ in range(3):
                seen = await whoami(gateway, "vs", "api__whoami")
                assert seen["authorization"] == "Bearer tok-1"  # Bastion's token, never the client's
            assert len(world.token_requests) == 1  # cached
            assert world.token_requests[0] == {
                "grant_type": "client_credentials", "scope": "mcp:tools", "audience": "https://upstream.example"
            }
            assert TOKEN not in json.dumps(world.seen_authorization)

            world.revoke_all()  # the upstream now refuses tok-1: one 401, a new token, the call succeeds
            refused = world.refused
            assert (await whoami(gateway, "vs", "api__whoami"))["authorization"] == "Bearer tok-2"
            assert world.refused == refused + 1 and len(world.token_requests) == 2

            # A PATCH may leave out the write-only secret to keep it.
            null_secret = {**created["auth"], "scope": "mcp:all", "client_secret": None}
            patched = await gateway.api.patch("/api/v1/upstreams/api", json={"auth": null_secret})
            assert patched.status_code == 400  # null is not a secret
            auth = {k: v for k, v in created["auth"].items() if k != "client_secret"} | {"scope": "mcp:all"}
            patched = await gateway.api.patch("/api/v1/upstreams/api", json={"auth": auth})
            assert patched.status_code == 200, patched.text
            assert world.token_requests[-1]["scope"] == "mcp:all"
            for text in (created.__repr__(), patched.text, (await gateway.api.get("/api/v1/upstreams")).text):
                assert CLIENT_SECRET not in text
            assert CLIENT_SECRET not in await stored_text(gateway.bastion.engine)

        async with serve(settings_for(url)) as again:  # the sealed settings open after a restart
            assert (await again.api.post("/api/v1/upstreams/api/refresh")).status_code == 200
            assert (await whoami(again, "vs", "api__whoami"))["authorization"].startswith("Bearer tok-")
    assert not [r.name for r in caplog.records if CLIENT_SECRET in r.getMessage()]
    # The upstream's whoami result (which echoes the token) may be logged by the SDK; Bastion never logs it.
    assert not [r.name for r in caplog.records if r.name.startswith("bastion") and "tok-1" in r.getMessage()]


async def test_a_refused_client_secret_fails_registration_clearly(tmp_path: Path) -> None:
    async with oauth_world() as (world, upstream_url, token_url):
        async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gateway:
            wrong = "cs-wrong-secret-9876"
            response = await gateway.api.post(
                "/api/v1/upstreams", json=oauth_body("api", "streamable-http", upstream_url, token_url, wrong)
            )
            assert response.status_code == 502
            assert response.headers["content-type"] == "application/problem+json"
            assert "invalid_client" in response.json()["detail"]
            assert wrong not in response.text and CLIENT_SECRET not in response.text
            assert (await gateway.api.get("/api/v1/upstreams/api")).status_code == 404
            assert world.refused == 0  # no request reached the upstream without a token


@pytest.mark.parametrize(
    "auth",
    [
        {"type": "oauth_client_credentials", "token_url": "ftp://x/token", "client_id": "a", "client_secret": "b"},
        {"type": "oauth_client_credentials", "token_url": "http://127.0.0.1/t", "client_id": "a"},
        {"type": "oauth_client_credentials", "token_url": "http://127.0.0.1/t", "client_id": "a", "client_secret": "b",
         "extra": 1},
        {"type": "kerberos"},
        {"type": "headers"},
    ],
)
async def test_bad_auth_settings_are_a_clear_400(auth: dict[str, Any], tmp_path: Path) -> None:
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gateway:
        body = {"name": "api", "transport": "streamable-http", "url": "http://127.0.0.1:9/mcp", "auth": auth}
        response = await gateway.api.post("/api/v1/upstreams", json=body)
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"


async def test_api_key_auth_is_a_sealed_static_header(tmp_path: Path) -> None:
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gateway:
        with http_fixture() as fx:
            body = {**fx.body("api"), "auth": {"type": "api_key", "header": "X-Api-Key", "value": CLIENT_SECRET}}
            created = await gateway.register(body)
            assert created["headers"] == {"X-Api-Key": "********"} and created["auth"] == {"type": "headers"}
            await gateway.create_server({"name": "vs", "upstreams": ["api"]})
            assert (await whoami(gateway, "vs", "api__whoami"))["x-api-key"] == CLIENT_SECRET
            assert CLIENT_SECRET not in await stored_text(gateway.bastion.engine)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_token_is_refetched_shortly_before_it_expires() -> None:
    async with oauth_world(expires_in=600) as (world, _, token_url):
        clock = Clock()
        config = OAuthClientCredentials(token_url=token_url, client_id="bastion", client_secret=CLIENT_SECRET)
        async with httpx2.AsyncClient() as http:
            source = ClientCredentialsToken("api", config, http, clock=clock)
            assert await source.token() == "tok-1"
            clock.now += 600 - 31  # still more than the 30 s margin left
            assert await source.token() == "tok-1"
            clock.now += 2
            assert await source.token() == "tok-2"
            source.invalidate("tok-1")  # a stale refusal does not drop the newer token
            assert await source.token() == "tok-2"
            assert len(world.token_requests) == 2

            broken = ClientCredentialsToken("api", config.model_copy(update={"token_url": token_url + "x"}), http)
            with pytest.raises(UpstreamUnavailable) as caught:
                await broken.token()
            assert CLIENT_SECRET not in caught.value.detail


async def _no_roots(context: Any) -> ListRootsResult:
    return ListRootsResult(roots=[])


async def test_a_callers_own_upstream_session_carries_bastions_token_and_renews_it_on_401(tmp_path: Path) -> None:
    """A client that can be asked (roots) calls on an upstream session of its own: Bastion's token goes
    there too (never the client's), and a refused token is replaced once, as on the shared session."""
    async with oauth_world() as (world, upstream_url, token_url):
        async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gateway:
            await gateway.register(oauth_body("api", "streamable-http", upstream_url, token_url))
            await gateway.create_server({"name": "vs", "upstreams": ["api"]})
            async with gateway.client("vs", mode="legacy", list_roots_callback=_no_roots) as client:
                first = json.loads((await client.call_tool("api__whoami", {})).content[0].text)  # type: ignore[union-attr]
                world.revoke_all()
                second = json.loads((await client.call_tool("api__whoami", {})).content[0].text)  # type: ignore[union-attr]
    assert first["authorization"] == "Bearer tok-1"
    assert second["authorization"] == "Bearer tok-2"
    assert TOKEN not in json.dumps(world.seen_authorization)
