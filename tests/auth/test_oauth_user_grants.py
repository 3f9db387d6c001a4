"""A user's OAuth grants end with the password that obtained them, and admins (and the user, for
themself) can see and end them, over the API and the CLI. Every grant here comes from the real flow
over loopback HTTP: registration, the consent page signed in with the password, the code exchange.

Before, a password reset ended the user's sign-in sessions but not their grants: the access token
kept working and the refresh token kept refreshing for 30 days (a grant got with a phished password
outlived the reset). Deactivating only suspended a grant: on reactivation its old tokens worked again.
No API listed a user's grants or ended one but /revoke, which needs the client's own token."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.auth.oauth_client import register, token_request, tokens_for
from tests.auth.test_oauth_server import DEV, any_db, gateway, initialize  # noqa: F401 - the fixtures
from tests.cli.test_identity_cli import run
from tests.harness import TOKEN, Running
from tests.identity import PASSWORD, make_user, signed_in

pytestmark = pytest.mark.anyio


async def _alive(gateway: Running, client: dict[str, Any], tokens: dict[str, Any]) -> tuple[int, str]:
    """What the grant's access token gets at its server, and the refresh's answer (its error, or "ok").
    A refresh that works rotates the token, so it is tried only when asked for and once."""
    mcp = (await initialize(gateway, "vs1", tokens["access_token"])).status_code
    refreshed = await token_request(gateway, client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    return mcp, "ok" if refreshed.status_code == 200 else refreshed.json().get("error", str(refreshed.status_code))


async def test_an_admins_password_change_ends_the_users_grants_but_not_their_api_tokens(gateway: Running) -> None:
    user = await make_user(gateway, "victim@example.com", "developer")
    client = await register(gateway)
    tokens = await tokens_for(gateway, client, "vs1", "victim@example.com")
    assert (await initialize(gateway, "vs1", tokens["access_token"])).status_code == 200
    async with signed_in(gateway, "victim@example.com") as session:
        made = await session.post("/api/v1/tokens", json={"name": "ci", "servers": ["vs1"], "permissions": ["mcp"]})
        assert made.status_code == 201, made.text
    api_token = made.json()["token"]

    changed = await gateway.api.patch(f"/api/v1/users/{user['id']}", json={"password": "a brand new passphrase 77"})
    assert changed.status_code == 200, changed.text
    assert await _alive(gateway, client, tokens) == (401, "invalid_grant")
    listed = await gateway.api.get(f"/api/v1/users/{user['id']}/grants")
    assert listed.status_code == 200 and listed.json()["items"] == []
    # API tokens are credentials an admin manages one by one: a password change leaves them.
    assert (await initialize(gateway, "vs1", api_token)).status_code == 200


async def test_deactivating_ends_the_grants_so_reactivating_does_not_bring_them_back(gateway: Running) -> None:
    user = await make_user(gateway, "leaver@example.com", "developer")
    client = await register(gateway)
    tokens = await tokens_for(gateway, client, "vs1", "leaver@example.com")
    assert (await initialize(gateway, "vs1", tokens["access_token"])).status_code == 200
    for active in (False, True):
        patched = await gateway.api.patch(f"/api/v1/users/{user['id']}", json={"active": active})
        assert patched.status_code == 200, patched.text
    assert await _alive(gateway, client, tokens) == (401, "invalid_grant")
    # A new sign-in makes a new grant, which works.
    again = await tokens_for(gateway, client, "vs1", "leaver@example.com")
    assert (await initialize(gateway, "vs1", again["access_token"])).status_code == 200


async def test_admins_list_and_end_a_users_grants_one_or_all(any_db: Running) -> None:
    """On SQLite and PostgreSQL alike: the grants are found by the user inside the stored grant."""
    gateway = any_db
    user = await make_user(gateway, "ada@example.com", "developer")
    first, second = await register(gateway, client_name="Claude Desktop"), await register(gateway, client_name="Cursor")
    kept = await tokens_for(gateway, first, "vs1", "ada@example.com")
    ended = await tokens_for(gateway, second, "vs1", "ada@example.com")
    other = await tokens_for(gateway, second, "vs1", DEV)  # another user's grant, never touched

    listed = await gateway.api.get("/api/v1/users/ada@example.com/grants")
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["user"] == user["id"] and body["total"] == 2
    by_client = {g["client_name"]: g for g in body["items"]}
    assert set(by_client) == {"Claude Desktop", "Cursor"}
    assert by_client["Cursor"]["client_id"] == second["client_id"]
    assert by_client["Cursor"]["resource"] == gateway.mcp_url("vs1")
    assert all(by_client["Cursor"][k] for k in ("created_at", "expires_at")) and by_client["Cursor"]["last_used_at"] is None
    for secret in (kept["access_token"], kept["refresh_token"], ended["access_token"], ended["refresh_token"]):
        assert secret not in listed.text

    grant = by_client["Cursor"]["id"]
    one = await gateway.api.delete(f"/api/v1/users/{user['id']}/grants/{grant}")
    assert one.status_code == 200 and one.json() == {"revoked": [grant]}
    assert await _alive(gateway, second, ended) == (401, "invalid_grant")
    assert (await initialize(gateway, "vs1", kept["access_token"])).status_code == 200
    again = await gateway.api.delete(f"/api/v1/users/{user['id']}/grants/{grant}")
    assert again.status_code == 404
    # A grant of another user is not found under this one.
    theirs = (await gateway.api.get(f"/api/v1/users/{DEV}/grants")).json()["items"]
    assert len(theirs) == 1
    assert (await gateway.api.delete(f"/api/v1/users/{user['id']}/grants/{theirs[0]['id']}")).status_code == 404

    everything = await gateway.api.delete(f"/api/v1/users/{user['id']}/grants")
    assert everything.status_code == 200 and len(everything.json()["revoked"]) == 1
    assert (await initialize(gateway, "vs1", kept["access_token"])).status_code == 401
    assert await _alive(gateway, second, other) == (200, "ok")

    records = (await gateway.api.get("/api/v1/audit", params={"limit": "500"})).json()["items"]
    actions = {(r["action"], r["target"]) for r in records if r["action"].startswith("DELETE /api/v1/users/")}
    assert ("DELETE /api/v1/users/{id}/grants/{grant}", f"{user['id']}/{grant}") in actions
    assert ("DELETE /api/v1/users/{id}/grants", user["id"]) in actions


async def test_a_user_sees_and_ends_their_own_grants_and_no_one_elses(gateway: Running) -> None:
    mallory = await make_user(gateway, "mallory@example.com", "developer")
    client = await register(gateway)
    mine = await tokens_for(gateway, client, "vs1", "mallory@example.com")
    victim = (await gateway.api.get(f"/api/v1/users/{DEV}")).json()
    theirs = await tokens_for(gateway, client, "vs1", DEV)
    their_grant = (await gateway.api.get(f"/api/v1/users/{DEV}/grants")).json()["items"][0]["id"]
    async with signed_in(gateway, "mallory@example.com") as session:
        for key in (victim["id"], DEV, "nobody@example.com", "no-such-id"):
            assert (await session.get(f"/api/v1/users/{key}/grants")).status_code == 403
            assert (await session.delete(f"/api/v1/users/{key}/grants")).status_code == 403
        assert (await session.delete(f"/api/v1/users/{victim['id']}/grants/{their_grant}")).status_code == 403
        assert (await initialize(gateway, "vs1", theirs["access_token"])).status_code == 200

        own = await session.get("/api/v1/users/mallory@example.com/grants")
        assert own.status_code == 200 and own.json()["total"] == 1
        assert (await session.delete(f"/api/v1/users/{mallory['id']}/grants")).status_code == 200
        assert (await session.get("/api/v1/auth/me")).status_code == 200  # the sign-in session stays
    assert (await initialize(gateway, "vs1", mine["access_token"])).status_code == 401
    assert (await initialize(gateway, "vs1", theirs["access_token"])).status_code == 200


async def test_the_cli_lists_and_ends_a_users_grants(gateway: Running, tmp_path: Path) -> None:
    await make_user(gateway, "cli@example.com", "developer")
    client = await register(gateway, client_name="Zed")
    first = await tokens_for(gateway, client, "vs1", "cli@example.com")
    second = await tokens_for(gateway, client, "vs1", "cli@example.com")
    admin: dict[str, str | None] = {"BASTION_URL": gateway.base_url, "BASTION_TOKEN": TOKEN, "XDG_CONFIG_HOME": str(tmp_path)}

    table = await run(admin, "users", "grants", "cli@example.com")
    assert table.exit_code == 0, table.output
    assert "Zed" in table.stdout and first["refresh_token"] not in table.stdout
    listed = await run(admin, "users", "grants", "cli@example.com", "--json")
    ids = [g["id"] for g in json.loads(listed.stdout)["items"]]
    assert len(ids) == 2

    one = await run(admin, "users", "revoke-grants", "cli@example.com", "--grant", ids[0], "--json")
    assert one.exit_code == 0 and json.loads(one.stdout) == {"revoked": [ids[0]]}
    rest = await run(admin, "users", "revoke-grants", "cli@example.com")
    assert rest.exit_code == 0 and "Ended 1 grant of cli@example.com" in rest.stdout
    for tokens in (first, second):
        assert (await initialize(gateway, "vs1", tokens["access_token"])).status_code == 401

    user = {k: v for k, v in admin.items() if k != "BASTION_TOKEN"}
    assert (await run(user, "login", DEV, "--password-stdin", stdin=PASSWORD + "\n")).exit_code == 0
    refused = await run(user, "users", "grants", "cli@example.com")
    assert refused.exit_code == 1 and "Forbidden" in refused.stderr
