"""The first admin comes from BASTION_ADMIN_EMAIL / BASTION_ADMIN_PASSWORD, once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import serve, settings_for
from tests.identity import login

pytestmark = pytest.mark.anyio

SECRET = "first-admin-password-42"


async def test_first_admin_is_created_from_settings_and_only_once(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/bastion.db"
    settings = settings_for(url, admin_email="Root@Example.com", admin_password=SECRET)
    async with serve(settings) as gw:
        signed = await login(gw, "root@example.com", SECRET)
        assert signed.status_code == 200 and signed.json()["user"]["role"] == "admin"
        headers = {"Authorization": f"Bearer {signed.json()['token']}"}
        made = await gw.api.post("/api/v1/teams", json={"name": "ops"}, headers=headers)
        assert made.status_code == 201
        changed = await gw.api.patch("/api/v1/users/root@example.com", json={"password": "a-new-password-1"})
        assert changed.status_code == 200
    # A restart with the same settings neither duplicates the user nor resets the changed password.
    async with serve(settings) as gw:
        users = (await gw.api.get("/api/v1/users")).json()["items"]
        assert [u["email"] for u in users] == ["root@example.com"]
        assert (await login(gw, "root@example.com", SECRET)).status_code == 401
        assert (await login(gw, "root@example.com", "a-new-password-1")).status_code == 200
