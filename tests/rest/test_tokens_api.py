"""REST /api/v1/tokens: create (secret once), list, revoke, input checks, and what a token may do
with the REST API, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import httpx2
import pytest
from sqlalchemy import text

from tests.harness import Running, stdio_fixture
from tests.rest.test_upstreams_api import assert_problem

pytestmark = pytest.mark.anyio


async def create_token(gateway: Running, **body: Any) -> dict[str, Any]:
    response = await gateway.api.post("/api/v1/tokens", json={"name": "t", **body})
    assert response.status_code == 201, response.text
    return response.json()


def as_token(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_create_shows_the_secret_once_and_list_never(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs1", "upstreams": ["fx"]})
    response = await gateway.api.post(
        "/api/v1/tokens", json={"name": "ci", "servers": ["vs1"], "expires_in": 3600, "ip_allow": ["10.1.2.3/8"]}
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    secret = created.pop("token")
    assert secret.startswith("bst_") and len(secret) > 40
    assert created["name"] == "ci"
    assert created["servers"] == ["vs1"]
    assert created["permissions"] == ["mcp"]
    assert created["ip_allow"] == ["10.0.0.0/8"]
    assert created["revoked"] is False and created["last_used_at"] is None
    lifetime = datetime.fromisoformat(created["expires_at"]) - datetime.fromisoformat(created["created_at"])
    assert lifetime.total_seconds() == 3600

    listed = await gateway.api.get("/api/v1/tokens")
    assert listed.status_code == 200
    assert listed.json()["items"] == [created]
    assert secret not in listed.text
    assert hashlib.sha256(secret.encode()).hexdigest() not in listed.text


async def test_the_database_holds_the_hash_not_the_secret(any_db_gateway: Running) -> None:
    created = await create_token(any_db_gateway, servers="*", permissions=["read"])
    async with any_db_gateway.bastion.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM api_tokens"))).mappings().all()
    assert len(rows) == 1
    row = dict(rows[0])
    assert row["id"] == created["id"]
    assert row["token_hash"] == hashlib.sha256(created["token"].encode()).hexdigest()
    assert created["token"] not in json.dumps(row, default=str)


async def test_a_read_token_can_read_but_not_write(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    await gateway.register(stdio_fixture("fx"))
    # Every server: a read token's catalog is what its servers reach (a token for no server reads nothing).
    secret = (await create_token(gateway, permissions=["read"], servers="*"))["token"]
    async with httpx2.AsyncClient(base_url=gateway.base_url, headers=as_token(secret)) as reader:
        for path in ("/api/v1/tools", "/api/v1/prompts", "/api/v1/resources", "/api/v1/servers", "/api/v1/upstreams"):
            assert (await reader.get(path)).status_code == 200, path
        assert (await reader.get("/api/v1/tools/fx__echo")).json()["name"] == "fx__echo"
        assert_problem(await reader.post("/api/v1/upstreams", json=stdio_fixture("other")), 403)
        assert_problem(await reader.patch("/api/v1/tools/fx__echo", json={"enabled": False}), 403)
        assert_problem(await reader.delete("/api/v1/upstreams/fx"), 403)
        assert_problem(await reader.get("/api/v1/tokens"), 403)
        assert_problem(await reader.get("/api/v1/nowhere"), 403)
    assert [u["name"] for u in (await gateway.api.get("/api/v1/upstreams")).json()["items"]] == ["fx"]


async def test_an_mcp_only_token_cannot_read_the_catalog(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs1", "upstreams": ["fx"]})
    secret = (await create_token(gateway, servers=["vs1"]))["token"]
    body = assert_problem(await gateway.api.get("/api/v1/tools", headers=as_token(secret)), 403)
    assert "'read'" in body["detail"] and body["missing"] == "permission:read"


async def test_only_the_admin_manages_tokens(gateway: Running) -> None:
    secret = (await create_token(gateway, permissions=["read"], servers="*"))["token"]
    headers = as_token(secret)
    assert_problem(await gateway.api.post("/api/v1/tokens", json={"name": "x", "servers": "*"}, headers=headers), 403)
    assert_problem(await gateway.api.get("/api/v1/tokens", headers=headers), 403)
    token_id = (await gateway.api.get("/api/v1/tokens")).json()["items"][0]["id"]
    assert_problem(await gateway.api.delete(f"/api/v1/tokens/{token_id}", headers=headers), 403)
    async with httpx2.AsyncClient(base_url=gateway.base_url) as anonymous:
        assert_problem(await anonymous.get("/api/v1/tokens"), 401)
    assert len((await gateway.api.get("/api/v1/tokens")).json()["items"]) == 1


async def test_revoke_then_unknown_and_repeated(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    created = await create_token(any_db_gateway, permissions=["read"])
    assert (await api.get("/api/v1/tools", headers=as_token(created["token"]))).status_code == 200
    assert (await api.delete(f"/api/v1/tokens/{created['id']}")).status_code == 204
    body = assert_problem(await api.get("/api/v1/tools", headers=as_token(created["token"])), 401)
    assert "revoked" in body["detail"]
    assert (await api.delete(f"/api/v1/tokens/{created['id']}")).status_code == 204
    assert_problem(await api.delete("/api/v1/tokens/no-such-id"), 404)
    (listed,) = (await api.get("/api/v1/tokens")).json()["items"]
    assert listed["revoked"] is True


async def test_unknown_token_is_401(gateway: Running) -> None:
    assert_problem(await gateway.api.get("/api/v1/tools", headers=as_token("bst_not-a-real-token")), 401)


async def test_use_is_recorded(gateway: Running) -> None:
    created = await create_token(gateway, permissions=["read"])
    for _ in range(3):
        assert (await gateway.api.get("/api/v1/servers", headers=as_token(created["token"]))).status_code == 200
    (listed,) = (await gateway.api.get("/api/v1/tokens")).json()["items"]
    assert listed["last_used_ip"] == "127.0.0.1"
    assert datetime.fromisoformat(listed["last_used_at"]) >= datetime.fromisoformat(created["created_at"])


@pytest.mark.parametrize(
    "body",
    [
        {"name": "", "servers": ["vs1"]},
        {"name": "   ", "servers": ["vs1"]},
        {"servers": ["vs1"]},
        {"name": "t", "servers": ["nope"]},
        {"name": "t", "servers": ["vs1"], "permissions": ["admin"]},
        {"name": "t", "servers": ["vs1"], "permissions": []},
        {"name": "t", "servers": ["vs1"], "ip_allow": ["10.0.0.0/33"]},
        {"name": "t", "servers": ["vs1"], "ip_allow": ["not-an-ip"]},
        {"name": "t", "servers": ["vs1"], "ip_allow": "10.0.0.0/8"},
        {"name": "t", "servers": ["vs1"], "expires_in": 0},
        {"name": "t", "servers": ["vs1"], "expires_in": "60"},
        {"name": "t", "servers": "all"},
        {"name": "t"},
        {"name": "t", "servers": ["vs1"], "colour": "red"},
    ],
)
async def test_invalid_input_is_refused(gateway: Running, body: dict[str, Any]) -> None:
    await gateway.create_server({"name": "vs1"})
    assert_problem(await gateway.api.post("/api/v1/tokens", json=body), 400)
    assert (await gateway.api.get("/api/v1/tokens")).json()["items"] == []
