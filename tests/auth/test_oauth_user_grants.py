"""A user's OAuth grants end with the password that obtained them. Every grant here comes from the
real flow over loopback HTTP: registration, the consent page signed in with the password, the code
exchange.

Before, a password reset ended the user's sign-in sessions but not their grants: the access token
kept working and the refresh token kept refreshing for 30 days (a grant got with a phished password
outlived the reset). Deactivating only suspended a grant: on reactivation its old tokens worked again."""

from __future__ import annotations

from typing import Any

import pytest

from tests.auth.oauth_client import register, token_request, tokens_for
from tests.auth.test_oauth_server import gateway, initialize  # noqa: F401 - the fixture
from tests.harness import Running
from tests.identity import make_user, signed_in

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
