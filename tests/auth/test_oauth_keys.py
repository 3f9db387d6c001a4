"""The authorization server's signing keys: made on first use, rotated by age, retired keys kept
published while their tokens may live, shared by replicas through the database (sealed)."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2
import jwt
import pytest

from bastion.auth.oauth.keys import SigningKeys
from bastion.store.memory_oauth import MemoryOAuthRepo
from bastion.vault.crypto import Sealer
from tests.auth.oauth_client import REDIRECT_URI, Pkce, code_for, register, serve_public, token_request, tokens_for
from tests.e2e.test_token_scopes import INITIALIZE, MCP_HEADERS
from tests.harness import Running, stdio_fixture
from tests.identity import make_user

pytestmark = pytest.mark.anyio

DAY = 86400.0


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def verify(token: str, jwks: dict[str, object]) -> dict[str, object]:
    keys = {k["kid"]: k for k in jwks["keys"]}  # type: ignore[attr-defined]
    key = jwt.PyJWK(keys[kid(token)])
    return dict(jwt.decode(token, key.key, algorithms=["ES256"], options={"verify_aud": False}))


async def test_keys_rotate_by_age_and_retired_ones_stay_published_until_their_tokens_expired() -> None:
    repo, clock, sealer = MemoryOAuthRepo(), Clock(), Sealer(os.urandom(32))
    keys = SigningKeys(repo, sealer, rotate_after=30 * DAY, token_ttl=600, now=clock)
    first = await keys.sign({"sub": "u"})
    assert [k["kid"] for k in (await keys.jwks())["keys"]] == [kid(first)]
    assert all("d" not in k for k in (await keys.jwks())["keys"])  # never the private half
    clock.now += timedelta(days=31)
    second = await keys.sign({"sub": "u"})
    assert kid(second) != kid(first)
    jwks = await keys.jwks()
    assert verify(first, jwks)["sub"] == verify(second, jwks)["sub"] == "u"
    clock.now += timedelta(days=31)  # the first key was retired long ago: its tokens are all expired
    third = await keys.sign({"sub": "u"})
    published = {k["kid"] for k in (await keys.jwks())["keys"]}
    assert kid(first) not in published and {kid(second), kid(third)} <= published


async def test_replicas_with_the_same_state_key_sign_with_the_same_key() -> None:
    repo, clock, key = MemoryOAuthRepo(), Clock(), os.urandom(32)
    one = SigningKeys(repo, Sealer(key), rotate_after=DAY, token_ttl=600, now=clock)
    two = SigningKeys(repo, Sealer(key), rotate_after=DAY, token_ttl=600, now=clock)
    assert kid(await one.sign({})) == kid(await two.sign({}))
    clock.now += timedelta(days=2)
    rotated = kid(await one.sign({}))
    clock.now += timedelta(minutes=2)  # past the re-read interval: the other replica follows
    assert kid(await two.sign({})) == rotated


async def test_a_replica_that_cannot_open_the_key_makes_its_own_and_both_stay_published() -> None:
    repo, clock = MemoryOAuthRepo(), Clock()
    one = SigningKeys(repo, Sealer(os.urandom(32)), rotate_after=DAY, token_ttl=600, now=clock)
    two = SigningKeys(repo, Sealer(os.urandom(32)), rotate_after=DAY, token_ttl=600, now=clock)
    a, b = await one.sign({"n": 1}), await two.sign({"n": 2})
    assert kid(a) != kid(b)
    jwks = await one.jwks()
    assert verify(a, jwks)["n"] == 1 and verify(b, jwks)["n"] == 2


async def initialize(gateway: Running, token: str) -> int:
    headers = {**MCP_HEADERS, "authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(f"{gateway.base_url}/servers/vs1/mcp", json=INITIALIZE, headers=headers)
    return response.status_code


async def test_replicas_accept_each_others_tokens_and_reload_on_an_unknown_key(tmp_path: Path) -> None:
    """Two replicas on one database, behind one public URL. They even hold different state keys, so
    each signs with a key of its own: a token from the other names a key id it has not loaded yet."""
    database = f"sqlite+aiosqlite:///{tmp_path}/shared.db"
    async with serve_public(database, state_key=base64.b64encode(os.urandom(32)).decode()) as first:
        await first.register(stdio_fixture("fx"))
        await first.create_server({"name": "vs1", "upstreams": ["fx"], "visibility": "public"})
        await make_user(first, "dev@example.com", "developer")
        other_key = base64.b64encode(os.urandom(32)).decode()
        async with serve_public(database, public_url=first.base_url, state_key=other_key) as second:
            client = await register(first)
            # Signed in through the public URL; the code is redeemed at the second replica, which signs.
            pkce = Pkce()
            code = await code_for(first, client, "vs1", "dev@example.com", pkce)
            redeemed = await token_request(
                second,
                client,
                grant_type="authorization_code",
                code=code,
                redirect_uri=REDIRECT_URI,
                code_verifier=pkce.verifier,
            )
            assert redeemed.status_code == 200, redeemed.text
            from_second = redeemed.json()
            assert await initialize(second, from_second["access_token"]) == 200  # second has loaded its keys
            from_first = await tokens_for(first, client, "vs1", "dev@example.com")
            assert kid(from_first["access_token"]) != kid(from_second["access_token"])
            assert await initialize(second, from_first["access_token"]) == 200  # an unknown kid: reloaded
            assert await initialize(first, from_second["access_token"]) == 200
            # Refresh tokens live in the shared database: one replica rotates what the other issued.
            refreshed = await token_request(
                second, client, grant_type="refresh_token", refresh_token=from_first["refresh_token"]
            )
            assert refreshed.status_code == 200, refreshed.text
