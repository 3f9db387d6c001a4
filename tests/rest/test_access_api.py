"""Roles, ownership and visibility on the REST API and MCP endpoints, over real HTTP on both databases."""

from __future__ import annotations

import httpx2
import pytest

from tests.harness import Running, stdio_fixture
from tests.identity import make_user, signed_in

pytestmark = pytest.mark.anyio


async def test_viewer_reads_the_catalog_but_cannot_write(any_db_gateway: Running) -> None:
    gw = any_db_gateway
    await gw.register({**stdio_fixture("fx"), "visibility": "public"})
    await make_user(gw, "viewer@example.com", "viewer", "alpha")
    async with signed_in(gw, "viewer@example.com") as viewer:
        assert [u["name"] for u in (await viewer.get("/api/v1/upstreams")).json()["items"]] == ["fx"]
        assert (await viewer.get("/api/v1/tools/fx__echo")).status_code == 200
        for method, path, body in [
            ("POST", "/api/v1/upstreams", {**stdio_fixture("mine"), "team": "alpha"}),
            ("PATCH", "/api/v1/upstreams/fx", {"enabled": False}),
            ("DELETE", "/api/v1/upstreams/fx", None),
            ("PATCH", "/api/v1/tools/fx__echo", {"enabled": False}),
            ("POST", "/api/v1/servers", {"name": "vs", "upstreams": ["fx"], "team": "alpha"}),
        ]:
            response = await viewer.request(method, path, json=body)
            assert response.status_code == 403, (method, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
    assert (await gw.api.get("/api/v1/upstreams/fx")).json()["enabled"] is True


async def test_team_visibility_hides_other_teams_private_upstreams(any_db_gateway: Running) -> None:
    gw = any_db_gateway
    await make_user(gw, "a@example.com", "developer", "alpha")
    await make_user(gw, "b@example.com", "developer", "beta")
    async with signed_in(gw, "b@example.com") as b:
        created = await b.post("/api/v1/upstreams", json={**stdio_fixture("bpriv"), "visibility": "private"})
        assert created.status_code == 201, created.text
        assert created.json()["team"] == "beta" and created.json()["visibility"] == "private"
        shared = await b.post("/api/v1/upstreams", json={**stdio_fixture("bpub"), "visibility": "public"})
        assert shared.status_code == 201, shared.text
    async with signed_in(gw, "a@example.com") as a:
        assert [u["name"] for u in (await a.get("/api/v1/upstreams")).json()["items"]] == ["bpub"]
        hidden = await a.get("/api/v1/upstreams/bpriv")
        assert hidden.status_code == 404 and hidden.headers["content-type"] == "application/problem+json"
        assert (await a.get("/api/v1/upstreams/bpub")).status_code == 200
        assert (await a.get("/api/v1/tools/bpriv__echo")).status_code == 404
        tools = {t["upstream"] for t in (await a.get("/api/v1/tools")).json()["items"]}
        assert tools == {"bpub"}
        # Changing what one cannot see is "not found"; what one sees but does not own is "forbidden".
        assert (await a.patch("/api/v1/upstreams/bpriv", json={"enabled": False})).status_code == 404
        assert (await a.delete("/api/v1/upstreams/bpriv")).status_code == 404
        assert (await a.patch("/api/v1/upstreams/bpub", json={"enabled": False})).status_code == 403
        assert (await a.delete("/api/v1/upstreams/bpub")).status_code == 403
        assert (await a.patch("/api/v1/tools/bpub__echo", json={"enabled": False})).status_code == 403
        stolen = await a.post("/api/v1/upstreams", json={**stdio_fixture("sneaky"), "team": "beta"})
        assert stolen.status_code == 403
        using = await a.post("/api/v1/servers", json={"name": "peek", "upstreams": ["bpriv"], "team": "alpha"})
        assert using.status_code == 400
    admin_view = {u["name"] for u in (await gw.api.get("/api/v1/upstreams")).json()["items"]}
    assert admin_view == {"bpriv", "bpub"}


async def test_developer_manages_own_teams_upstreams_and_servers(any_db_gateway: Running) -> None:
    gw = any_db_gateway
    await make_user(gw, "a@example.com", "developer", "alpha")
    await make_user(gw, "a2@example.com", "developer", "alpha")
    async with signed_in(gw, "a@example.com") as a:
        assert (await a.post("/api/v1/upstreams", json=stdio_fixture("fx"))).status_code == 201
        server = await a.post("/api/v1/servers", json={"name": "vs", "upstreams": ["fx"]})
        assert server.status_code == 201 and server.json()["team"] == "alpha"
        assert server.json()["visibility"] == "team"
        # A developer's upstream is pinned but not approved: its tools wait for an admin.
        waiting = (await a.get("/api/v1/approvals")).json()["items"]
        assert waiting and {w["change"] for w in waiting} == {"new"}
        refused = await a.post(f"/api/v1/approvals/{waiting[0]['id']}/approve")
        assert refused.status_code == 403
    for approval in waiting:
        assert (await gw.api.post(f"/api/v1/approvals/{approval['id']}/approve")).status_code == 200
    async with signed_in(gw, "a2@example.com") as a2:
        assert (await a2.patch("/api/v1/upstreams/fx", json={"visibility": "public"})).status_code == 200
        assert (await a2.patch("/api/v1/tools/fx__echo", json={"description": "Echo."})).status_code == 200
        token = a2.headers["Authorization"].removeprefix("Bearer ")
        async with gw.client("vs", token=token) as client:
            assert (await client.call_tool("fx__echo", {"text": "hi"})).content[0].text == "hi"
        assert (await a2.delete("/api/v1/servers/vs")).status_code == 204
    teams = await gw.api.delete("/api/v1/teams/alpha")
    assert teams.status_code == 409  # it still owns fx


async def test_mcp_endpoint_of_an_invisible_server_is_not_found(any_db_gateway: Running) -> None:
    gw = any_db_gateway
    await gw.register(stdio_fixture("fx"))
    await gw.create_server({"name": "secret", "upstreams": ["fx"]})
    await make_user(gw, "dev@example.com", "developer", "alpha")
    async with signed_in(gw, "dev@example.com") as dev:
        headers = {"Accept": "application/json, text/event-stream"}
        body = {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {}}
        assert (await dev.post("/servers/secret/mcp", json=body, headers=headers)).status_code == 404
        assert (await dev.get("/api/v1/servers/secret")).status_code == 404
        assert (await dev.get("/api/v1/servers")).json()["items"] == []
    await make_user(gw, "viewer@example.com", "viewer", "alpha")
    await gw.api.patch("/api/v1/servers/secret", json={"visibility": "public"})
    async with signed_in(gw, "viewer@example.com") as viewer:
        assert (await viewer.get("/api/v1/servers/secret")).status_code == 200
        refused = await viewer.post("/servers/secret/mcp", json=body, headers=headers)
        assert refused.status_code == 403


async def test_a_users_api_token_never_exceeds_the_user(any_db_gateway: Running) -> None:
    gw = any_db_gateway
    await gw.register({**stdio_fixture("fx"), "visibility": "public"})
    await gw.create_server({"name": "vs", "upstreams": ["fx"], "visibility": "public"})
    viewer = await make_user(gw, "viewer@example.com", "viewer", "alpha")
    async with signed_in(gw, "viewer@example.com") as session:
        mcp = await session.post("/api/v1/tokens", json={"name": "agent", "servers": ["vs"], "permissions": ["mcp"]})
        assert mcp.status_code == 403
        made = await session.post("/api/v1/tokens", json={"name": "reader", "permissions": ["read"]})
        assert made.status_code == 201 and made.json()["user"] == viewer["id"]
        secret = made.json()["token"]
        mine = (await session.get("/api/v1/tokens")).json()["items"]
        assert [t["name"] for t in mine] == ["reader"]
    others = await gw.api.post("/api/v1/tokens", json={"name": "admins", "permissions": ["read"]})
    assert others.status_code == 201
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx2.AsyncClient(base_url=gw.base_url, headers=headers) as token:
        assert (await token.get("/api/v1/upstreams")).status_code == 200
        assert (await token.patch("/api/v1/upstreams/fx", json={"enabled": False})).status_code == 403
        assert (await token.post("/api/v1/servers", json={"name": "x", "upstreams": ["fx"]})).status_code == 403
        assert (await token.get("/api/v1/tokens")).status_code == 403
        off = await gw.api.patch(f"/api/v1/users/{viewer['id']}", json={"active": False})
        assert off.status_code == 200
        assert (await token.get("/api/v1/upstreams")).status_code == 401
