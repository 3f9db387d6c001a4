"""Least-privilege principals probing the REST API for what lies beyond their rights, over real HTTP
on both databases: each test is a hole that was found open."""

from __future__ import annotations

import copy
import json

import httpx2
import pytest

from tests.attacks.network import internal, public_upstream
from tests.harness import Running, free_port, serve_asgi, stdio_fixture
from tests.identity import make_user, signed_in
from tests.upstreams.rest_service import DOCUMENT, build_app

pytestmark = pytest.mark.anyio
STORED_SECRET = "STORED-SECRET-5f2a"


async def test_a_token_for_one_server_reads_no_duplicates_beyond_it(any_db_gateway: Running) -> None:
    gw = any_db_gateway
    await make_user(gw, "dev@example.com", "developer", "alpha")
    for name in ("mine", "other", "third"):
        await gw.register({**stdio_fixture(name), "team": "alpha", "visibility": "team"})
    await gw.create_server({"name": "narrow", "upstreams": ["mine"], "team": "alpha"})
    assert (await gw.api.get("/api/v1/catalog/duplicates")).json()["groups"], "the fixture upstreams should duplicate"
    admins = await gw.api.post("/api/v1/tokens", json={"name": "n", "servers": ["narrow"], "permissions": ["read"]})
    async with signed_in(gw, "dev@example.com") as dev:
        users = await dev.post("/api/v1/tokens", json={"name": "n", "servers": ["narrow"], "permissions": ["read"]})
    for made in (admins, users):
        assert made.status_code == 201, made.text
        headers = {"Authorization": f"Bearer {made.json()['token']}"}
        async with httpx2.AsyncClient(base_url=gw.base_url, headers=headers) as token:
            # What the token may read of the catalog: only what "narrow" serves, from "mine".
            assert {t["upstream"] for t in (await token.get("/api/v1/tools")).json()["items"]} == {"mine"}
            groups = await token.get("/api/v1/catalog/duplicates")
            assert groups.status_code == 200
            named = {u for g in groups.json()["groups"] for u in g["upstreams"]}
            assert named <= {"mine"}, groups.text
            assert "other__" not in groups.text and "third__" not in groups.text


async def test_a_developer_cannot_send_an_upstreams_stored_header_to_a_new_address(any_db_gateway: Running) -> None:
    gw = any_db_gateway
    await make_user(gw, "dev@example.com", "developer", "alpha")
    async with public_upstream() as url, internal() as attacker:
        # The admin sets the team's upstream up with a credential: write-only, shown as ********.
        secret = {"Authorization": f"Bearer {STORED_SECRET}"}
        await gw.register({"name": "gh", "transport": "streamable-http", "url": url, "team": "alpha", "headers": secret})
        async with signed_in(gw, "dev@example.com") as dev:
            shown = (await dev.get("/api/v1/upstreams/gh")).json()
            assert STORED_SECRET not in json.dumps(shown)
            for change in ({"url": f"{attacker.url}/mcp"}, {"url": f"{attacker.url}/mcp", "headers": shown["headers"]}):
                moved = await dev.patch("/api/v1/upstreams/gh", json=change)
                assert moved.status_code == 403, moved.text
            assert not any(STORED_SECRET in json.dumps(hit) for hit in attacker.hits), attacker.hits
            # Given anew, a credential is the developer's own to send where they like.
            fresh = await dev.patch("/api/v1/upstreams/gh", json={"url": url, "headers": {"Authorization": "Bearer mine"}})
            assert fresh.status_code == 200, fresh.text
        await gw.api.delete("/api/v1/upstreams/gh")  # its connection closed before its server stops


async def test_a_developer_cannot_send_an_upstreams_client_secret_to_a_new_token_endpoint(any_db_gateway: Running) -> None:
    gw = any_db_gateway
    await make_user(gw, "dev@example.com", "developer", "alpha")
    async with public_upstream() as url, internal() as issuer, internal() as attacker:
        auth = {"type": "oauth_client_credentials", "token_url": f"{issuer.url}/token", "client_id": "bastion"}
        await gw.register(
            {"name": "gh", "transport": "streamable-http", "url": url, "team": "alpha", "auth": {**auth, "client_secret": STORED_SECRET}}
        )
        async with signed_in(gw, "dev@example.com") as dev:
            shown = (await dev.get("/api/v1/upstreams/gh")).json()["auth"]
            assert shown["client_secret"] == "********"
            elsewhere = {**shown, "token_url": f"{attacker.url}/token"}
            for change in ({"auth": elsewhere}, {"auth": {k: v for k, v in elsewhere.items() if k != "client_secret"}}):
                moved = await dev.patch("/api/v1/upstreams/gh", json=change)
                assert moved.status_code == 403, moved.text
            assert not any(STORED_SECRET in json.dumps(hit) for hit in attacker.hits), attacker.hits
            anew = {"auth": {**auth, "client_secret": "mine"}}
            assert (await dev.patch("/api/v1/upstreams/gh", json=anew)).status_code == 200
        await gw.api.delete("/api/v1/upstreams/gh")  # its connection closed before its server stops


async def test_a_token_for_one_server_cannot_touch_connections_to_upstreams_beyond_it(any_db_gateway: Running) -> None:
    gw = any_db_gateway
    await make_user(gw, "dev@example.com", "developer", "alpha")
    nowhere = f"http://127.0.0.1:{free_port()}"
    auth = {"type": "oauth_user", "authorization_url": f"{nowhere}/authorize", "token_url": f"{nowhere}/token", "client_id": "c"}
    await gw.register({"name": "up", "transport": "streamable-http", "url": f"{nowhere}/mcp", "isolation": "per_user", "auth": auth, "visibility": "public"})
    await gw.register({**stdio_fixture("fx"), "visibility": "public"})
    await gw.create_server({"name": "narrow", "upstreams": ["fx"], "visibility": "public"})
    async with signed_in(gw, "dev@example.com") as dev:
        # The user may connect their account to "up"; their token for "narrow" alone may not.
        assert (await dev.get("/api/v1/upstreams/up/connection")).json()["connected"] is False
        made = await dev.post("/api/v1/tokens", json={"name": "n", "servers": ["narrow"], "permissions": ["mcp"]})
    headers = {"Authorization": f"Bearer {made.json()['token']}"}
    async with httpx2.AsyncClient(base_url=gw.base_url, headers=headers) as token:
        for method, path in [
            ("POST", "/api/v1/upstreams/up/connect"),
            ("GET", "/api/v1/upstreams/up/connection"),
            ("DELETE", "/api/v1/upstreams/up/connection"),
        ]:
            refused = await token.request(method, path)
            assert refused.status_code == 404, (method, path, refused.text)


async def test_a_rest_upstreams_document_address_is_hidden_like_its_url(any_db_gateway: Running) -> None:
    gw = any_db_gateway
    await make_user(gw, "viewer@example.com", "viewer", "alpha")
    await make_user(gw, "dev@example.com", "developer", "beta")
    async with serve_asgi(build_app(copy.deepcopy(DOCUMENT))) as base:
        # Keys ride in the addresses of many REST APIs: only those who may edit the upstream see them.
        where = {"spec_url": f"{base}/openapi.json?key={STORED_SECRET}", "base_url": f"{base}/v1?key={STORED_SECRET}"}
        await gw.register({"name": "pets", "transport": "openapi", "team": "alpha", "visibility": "public", **where})
        for email in ("viewer@example.com", "dev@example.com"):
            async with signed_in(gw, email) as reader:
                for reply in (await reader.get("/api/v1/upstreams/pets"), await reader.get("/api/v1/upstreams")):
                    assert reply.status_code == 200
                    assert STORED_SECRET not in reply.text, (email, reply.text)
        shown = (await gw.api.get("/api/v1/upstreams/pets")).json()["openapi"]
        assert STORED_SECRET in shown["spec_url"] and STORED_SECRET in shown["base_url"]
        await gw.api.delete("/api/v1/upstreams/pets")
