"""Users, login, logout and lockout over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx2
import pytest

from tests.harness import Running
from tests.identity import PASSWORD, login, make_user, signed_in

pytestmark = pytest.mark.anyio


async def test_admin_manages_users_and_passwords_are_never_echoed(any_db_gateway: Running) -> None:
    gw = any_db_gateway
    created = await make_user(gw, "Ada@Example.com", "developer")
    assert created["email"] == "ada@example.com" and created["role"] == "developer" and created["active"] is True
    assert "password" not in created and "password_hash" not in created
    again = await gw.api.post("/api/v1/users", json={"email": "ADA@example.COM", "password": PASSWORD})
    assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
    short = await gw.api.post("/api/v1/users", json={"email": "bo@example.com", "password": "short"})
    assert short.status_code == 400 and "short" not in short.text
    listed = (await gw.api.get("/api/v1/users")).json()["items"]
    assert [u["email"] for u in listed] == ["ada@example.com"] and PASSWORD not in str(listed)
    by_email = await gw.api.get("/api/v1/users/ada@example.com")
    assert by_email.json()["id"] == created["id"]
    patched = await gw.api.patch(f"/api/v1/users/{created['id']}", json={"role": "viewer"})
    assert patched.status_code == 200 and patched.json()["role"] == "viewer"
    assert (await gw.api.delete(f"/api/v1/users/{created['id']}")).status_code == 204
    assert (await gw.api.get(f"/api/v1/users/{created['id']}")).status_code == 404


async def test_login_me_and_logout(any_db_gateway: Running) -> None:
    gw = any_db_gateway
    user = await make_user(gw, "dev@example.com", "developer", "alpha")
    response = await login(gw, "DEV@example.com")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token"].startswith("bss_") and body["user"]["id"] == user["id"] and PASSWORD not in response.text
    headers = {"Authorization": f"Bearer {body['token']}"}
    async with httpx2.AsyncClient(base_url=gw.base_url, headers=headers) as client:
        me = (await client.get("/api/v1/auth/me")).json()
        assert me["kind"] == "user" and me["role"] == "developer" and me["teams"] == ["alpha"]
        assert me["user"]["email"] == "dev@example.com"
        assert (await client.post("/api/v1/auth/logout")).status_code == 204
        assert (await client.get("/api/v1/auth/me")).status_code == 401


async def test_wrong_password_and_unknown_email_get_the_same_answer(any_db_gateway: Running) -> None:
    gw = any_db_gateway
    await make_user(gw, "real@example.com")
    wrong = await login(gw, "real@example.com", "not the password")
    unknown = await login(gw, "nobody@example.com", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    malformed = await login(gw, "real@example.com", 42)  # type: ignore[arg-type]
    assert malformed.status_code == 400


async def test_repeated_failures_lock_the_account_with_retry_after(any_db_gateway: Running) -> None:
    gw = any_db_gateway
    await make_user(gw, "target@example.com")
    for _ in range(gw.bastion.settings.login_max_failures):
        assert (await login(gw, "target@example.com", "guess-guess")).status_code == 401
    locked = await login(gw, "target@example.com")  # even the right password waits now
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
    assert locked.headers["content-type"] == "application/problem+json"
    assert (await login(gw, "target@example.com", "guess-guess")).status_code == 429


async def test_a_deactivated_user_cannot_sign_in_and_loses_their_sessions(any_db_gateway: Running) -> None:
    gw = any_db_gateway
    user = await make_user(gw, "leaver@example.com", "developer")
    async with signed_in(gw, "leaver@example.com") as client:
        assert (await client.get("/api/v1/auth/me")).status_code == 200
        off = await gw.api.patch(f"/api/v1/users/{user['id']}", json={"active": False})
        assert off.status_code == 200 and off.json()["active"] is False
        assert (await client.get("/api/v1/auth/me")).status_code == 401
    refused = await login(gw, "leaver@example.com")
    assert refused.status_code == 403
    assert (await login(gw, "leaver@example.com", "wrong-password")).status_code == 401


async def test_only_admins_manage_users_and_teams(any_db_gateway: Running) -> None:
    gw = any_db_gateway
    await make_user(gw, "dev@example.com", "developer", "alpha")
    async with signed_in(gw, "dev@example.com") as dev:
        assert (await dev.get("/api/v1/users")).status_code == 403
        denied = await dev.post("/api/v1/users", json={"email": "x@example.com", "password": PASSWORD, "role": "admin"})
        assert denied.status_code == 403
        assert (await dev.post("/api/v1/teams", json={"name": "beta"})).status_code == 403
        assert [t["name"] for t in (await dev.get("/api/v1/teams")).json()["items"]] == ["alpha"]
    await gw.api.post("/api/v1/teams", json={"name": "beta"})
    async with signed_in(gw, "dev@example.com") as dev:
        assert (await dev.get("/api/v1/teams/beta")).status_code == 404
        assert (await dev.get("/api/v1/teams/alpha")).status_code == 200
