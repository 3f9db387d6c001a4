"""Helpers for identity tests: users, teams and signed-in clients against a running Bastion."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2

from tests.harness import Running

PASSWORD = "correct horse battery staple"


async def make_user(gateway: Running, email: str, role: str = "viewer", *teams: str) -> dict[str, Any]:
    """Create a user (as the admin) and put them in `teams`, creating teams that do not exist yet."""
    created = await gateway.api.post("/api/v1/users", json={"email": email, "password": PASSWORD, "role": role})
    assert created.status_code == 201, created.text
    for team in teams:
        if (await gateway.api.get(f"/api/v1/teams/{team}")).status_code == 404:
            assert (await gateway.api.post("/api/v1/teams", json={"name": team})).status_code == 201
        added = await gateway.api.post(f"/api/v1/teams/{team}/members", json={"user": email})
        assert added.status_code == 200, added.text
    return dict(created.json())


async def login(gateway: Running, email: str, password: str = PASSWORD) -> httpx2.Response:
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=60) as anon:
        return await anon.post("/api/v1/auth/login", json={"email": email, "password": password})


@asynccontextmanager
async def signed_in(gateway: Running, email: str, password: str = PASSWORD) -> AsyncIterator[httpx2.AsyncClient]:
    """A REST client carrying a fresh session token of `email`."""
    response = await login(gateway, email, password)
    assert response.status_code == 200, response.text
    headers = {"Authorization": f"Bearer {response.json()['token']}"}
    async with httpx2.AsyncClient(base_url=gateway.base_url, headers=headers, timeout=60) as client:
        yield client
