"""Least-privilege principals probing the REST API for what lies beyond their rights, over real HTTP
on both databases: each test is a hole that was found open."""

from __future__ import annotations

import httpx2
import pytest

from tests.harness import Running, stdio_fixture
from tests.identity import make_user, signed_in

pytestmark = pytest.mark.anyio


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
