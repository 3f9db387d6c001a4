"""Sign-in state held across three real replicas: failed logins counted together (an account
locks whichever replica is guessed on), and sign-out, deactivation, password changes and OAuth
access-token revocation refused at once on every replica (inside any replica's cache lifetime)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.auth.oauth_client import register, tokens_for
from tests.e2e.test_token_scopes import INITIALIZE, MCP_HEADERS
from tests.harness import Running, stdio_fixture
from tests.identity import PASSWORD
from tests.replicas.cluster import Replica, private_redis, replicas
from tests.replicas.test_replicas import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


def as_running(replica: Replica) -> Running:
    return Running(bastion=None, base_url=replica.base_url, api=replica.api)  # type: ignore[arg-type]


async def add_user(replica: Replica, email: str, role: str = "developer") -> dict[str, Any]:
    created = await replica.api.post("/api/v1/users", json={"email": email, "password": PASSWORD, "role": role})
    assert created.status_code == 201, created.text
    return dict(created.json())


async def sign_in(replica: Replica, email: str, password: str = PASSWORD) -> httpx2.Response:
    async with httpx2.AsyncClient(base_url=replica.base_url, timeout=30) as anon:
        return await anon.post("/api/v1/auth/login", json={"email": email, "password": password})


async def reads(replica: Replica, secret: str) -> int:
    """The status of a read (`GET /api/v1/servers`) with this bearer secret (a session or an API token)."""
    response = await replica.api.get("/api/v1/servers", headers={"Authorization": f"Bearer {secret}"})
    return response.status_code


async def test_failed_logins_spread_over_replicas_lock_the_account_on_all_of_them(tmp_path: Path) -> None:
    async with replicas(3, tmp_path, login_max_failures="3", login_lockout="600") as cluster:
        await add_user(cluster[0], "target@example.com")
        # Round robin, as a load balancer would spread a guesser's attempts: one failure per replica.
        for replica in cluster:
            assert (await sign_in(replica, "target@example.com", "wrong guess")).status_code == 401
        for replica in cluster:
            locked = await sign_in(replica, "target@example.com")  # even the right password waits
            assert locked.status_code == 429, locked.text
            assert int(locked.headers["retry-after"]) > 500
        # Another account is not locked by it.
        await add_user(cluster[0], "bystander@example.com")
        assert (await sign_in(cluster[1], "bystander@example.com")).status_code == 200


async def test_with_redis_down_login_is_refused_with_503_not_let_through(tmp_path: Path) -> None:
    with private_redis(tmp_path) as (redis_url, stop_redis, start_redis):
        await start_redis()
        async with replicas(1, tmp_path, redis_url=redis_url) as (r1,):
            await add_user(r1, "someone@example.com")
            assert (await sign_in(r1, "someone@example.com")).status_code == 200
            stop_redis()
            for password in ("wrong guess", PASSWORD):
                refused = await sign_in(r1, "someone@example.com", password)
                assert refused.status_code == 503, refused.text
            await start_redis()
            assert (await sign_in(r1, "someone@example.com")).status_code == 200


async def test_sign_out_deactivation_and_password_change_are_refused_at_once_everywhere(tmp_path: Path) -> None:
    async with replicas(3, tmp_path) as cluster:
        r1, r2, r3 = cluster
        users = {name: await add_user(r1, f"{name}@example.com") for name in ("leaver", "mover", "signer")}
        sessions = {}
        for name in users:
            signed = await sign_in(r2, f"{name}@example.com")
            assert signed.status_code == 200, signed.text
            sessions[name] = signed.json()["token"]
        as_mover = {"Authorization": f"Bearer {sessions['mover']}"}
        made = await r3.api.post("/api/v1/tokens", json={"name": "t", "permissions": ["read"]}, headers=as_mover)
        assert made.status_code == 201, made.text
        mover_token = made.json()["token"]
        for replica in cluster:  # every replica now holds every credential in its cache
            for secret in [*sessions.values(), mover_token]:
                assert await reads(replica, secret) == 200

        signed_out = await r1.api.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {sessions['signer']}"})
        assert signed_out.status_code in (200, 204), signed_out.text
        deactivated = await r1.api.patch(f"/api/v1/users/{users['leaver']['id']}", json={"active": False})
        assert deactivated.status_code == 200, deactivated.text
        changed = await r2.api.patch(f"/api/v1/users/{users['mover']['id']}", json={"password": PASSWORD + " 2"})
        assert changed.status_code == 200, changed.text

        for replica in (r3, r2, r1):
            assert await reads(replica, sessions["signer"]) == 401
            assert await reads(replica, sessions["leaver"]) == 401
            assert await reads(replica, sessions["mover"]) == 401
            # The password change ended the mover's sessions, not their API token.
            assert await reads(replica, mover_token) == 200
        assert (await sign_in(r3, "mover@example.com", PASSWORD + " 2")).status_code == 200


async def test_revoking_an_oauth_access_token_on_one_replica_is_refused_at_once_on_the_others(
    tmp_path: Path,
) -> None:
    async with replicas(3, tmp_path, one_public_url=True) as cluster:
        r1 = as_running(cluster[0])
        await r1.register(stdio_fixture("fx"))
        await r1.create_server({"name": "vs1", "upstreams": ["fx"], "visibility": "public"})
        await add_user(cluster[0], "dev@example.com")
        client = await register(r1)
        tokens = await tokens_for(r1, client, "vs1", "dev@example.com")
        headers = {**MCP_HEADERS, "authorization": f"Bearer {tokens['access_token']}"}

        async def status(replica: Replica) -> int:
            response = await replica.api.post("/servers/vs1/mcp", json=INITIALIZE, headers=headers)
            return response.status_code

        async def ok(replica: Replica) -> bool:
            return await status(replica) == 200

        for replica in cluster:  # the server reaches the others through the change feed
            await eventually(lambda replica=replica: ok(replica))
        form = {"client_id": client["client_id"], "client_secret": client["client_secret"]}
        async with httpx2.AsyncClient(base_url=cluster[2].base_url) as http:
            revoked = await http.post("/revoke", data={**form, "token": tokens["access_token"]})
        assert revoked.status_code == 200, revoked.text
        for replica in cluster:
            assert await status(replica) == 401
        assert (await cluster[1].api.get("/api/v1/servers")).status_code == 200  # only that token is refused


async def test_with_redis_down_oauth_access_tokens_are_refused_with_503_then_work_again(tmp_path: Path) -> None:
    with private_redis(tmp_path) as (redis_url, stop_redis, start_redis):
        await start_redis()
        async with replicas(1, tmp_path, redis_url=redis_url) as (replica,):
            r1 = as_running(replica)
            await r1.register(stdio_fixture("fx"))
            await r1.create_server({"name": "vs1", "upstreams": ["fx"], "visibility": "public"})
            await add_user(replica, "dev@example.com")
            tokens = await tokens_for(r1, await register(r1), "vs1", "dev@example.com")
            headers = {**MCP_HEADERS, "authorization": f"Bearer {tokens['access_token']}"}

            async def status() -> int:
                return (await replica.api.post("/servers/vs1/mcp", json=INITIALIZE, headers=headers)).status_code

            assert await status() == 200
            stop_redis()  # its revocation list cannot be read: refused, never let through
            assert await status() == 503
            await start_redis()
            assert await status() == 200
