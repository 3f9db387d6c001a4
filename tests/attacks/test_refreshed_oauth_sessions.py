"""Class: a 2025-11-25 session and the OAuth grant behind it. A session opened with one of Bastion's
access tokens is bound to the grant the token was issued under (client, refresh family, user,
resource), not to the token's bytes: the access token a refresh returns carries the session on, with
what it held (its log level), on the replica that holds it and on another that restores it from the
shared store. Anyone else naming the session id (another grant of the same user, another user, the
same user's API token) finds nothing (404), and once the grant's family is revoked its tokens are
refused at the door (401). Before, the refreshed token found nothing and the session was lost."""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from redis.asyncio import Redis

from tests.auth.oauth_client import register, serve_public, token_request, tokens_for
from tests.harness import Running, open_raw_session, postgres_database, session_headers, stdio_fixture
from tests.identity import make_user, signed_in

pytestmark = pytest.mark.anyio

REDIS_URL = "redis://127.0.0.1:6379/0"
DEV, OTHER = "dev@example.com", "other@example.com"
SET_INFO = {"jsonrpc": "2.0", "id": 2, "method": "logging/setLevel", "params": {"level": "info"}}
PING = {"jsonrpc": "2.0", "id": 3, "method": "ping"}
LOG_CALL = {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "fx__log", "arguments": {"message": "hello"}}}


async def populate(running: Running) -> None:
    await running.register(stdio_fixture("fx"))
    await running.create_server({"name": "vs", "upstreams": ["fx"], "visibility": "public"})
    await make_user(running, DEV, "developer")
    await make_user(running, OTHER, "developer")


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Running]:
    async with serve_public(f"sqlite+aiosqlite:///{tmp_path}/b.db") as running:
        await populate(running)
        yield running


@asynccontextmanager
async def two_replicas() -> AsyncIterator[tuple[Running, Running]]:
    """Two replicas behind one public URL, on one PostgreSQL database and the local Redis (the shared
    session store), under a Redis prefix of their own."""
    prefix = f"bastion-test-{uuid.uuid4().hex[:12]}"
    shared: dict[str, Any] = {
        "redis_url": REDIS_URL,
        "redis_prefix": prefix,
        "state_key": base64.b64encode(os.urandom(32)).decode(),
    }
    redis = Redis.from_url(REDIS_URL)
    try:
        async with postgres_database() as database, AsyncExitStack() as stack:
            first = await stack.enter_async_context(serve_public(database, **shared))
            await populate(first)
            # The second starts after the server exists: a replica reads the configuration at start.
            second = await stack.enter_async_context(serve_public(database, public_url=first.base_url, **shared))
            yield first, second
    finally:
        names = [k async for k in redis.scan_iter(match=f"{prefix}:*")]
        if names:
            await redis.delete(*names)
        await redis.aclose()


async def post(url: str, token: str, session_id: str, body: dict[str, Any]) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=30) as http:
        return await http.post(url, headers=session_headers(session_id, token), json=body)


async def open_session(url: str, token: str) -> str:
    async with httpx2.AsyncClient(timeout=30) as http:
        return await open_raw_session(http, url, token=token)


def messages(response: httpx2.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages of an answer, whether plain JSON or an SSE stream."""
    if response.headers.get("content-type", "").startswith("application/json"):
        return [response.json()]
    return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()]


async def assert_logged_in_session(url: str, token: str, session_id: str) -> None:
    """A call in the session works, and the session's log level (info, set earlier) still holds:
    the call's log line reaches the caller."""
    answer = await post(url, token, session_id, LOG_CALL)
    assert answer.status_code == 200, answer.text
    assert answer.headers.get("mcp-session-id") == session_id
    sent = messages(answer)
    logs = [m["params"] for m in sent if m.get("method") == "notifications/message"]
    assert [(entry["level"], entry["data"]) for entry in logs] == [("info", "hello")], sent
    results = [m["result"] for m in sent if m.get("id") == LOG_CALL["id"]]
    assert [r["content"][0]["text"] for r in results] == ["logged"], sent


async def refreshed(gateway: Running, client: dict[str, Any], tokens: dict[str, Any]) -> dict[str, Any]:
    answer = await token_request(gateway, client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert answer.status_code == 200, answer.text
    new = dict(answer.json())
    assert new["access_token"] != tokens["access_token"]
    return new


async def refreshed_in_session(
    issuer: Running, client: dict[str, Any], replica: Running
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """DEV's first tokens, the ones a refresh returned, and the session the first opened (its log
    level set to info) on `issuer`, which the refreshed access token has gone on in at `replica`."""
    url = issuer.mcp_url("vs")
    first = await tokens_for(issuer, client, "vs", DEV)
    session_id = await open_session(url, first["access_token"])
    assert (await post(url, first["access_token"], session_id, SET_INFO)).status_code == 200
    second = await refreshed(issuer, client, first)
    await assert_logged_in_session(replica.mcp_url("vs"), second["access_token"], session_id)
    return first, second, session_id


async def api_token_of(gateway: Running, email: str) -> str:
    async with signed_in(gateway, email) as user:
        made = await user.post("/api/v1/tokens", json={"name": "agent", "servers": ["vs"], "permissions": ["mcp"]})
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


async def test_a_refreshed_access_token_continues_its_session_with_its_log_level(gateway: Running) -> None:
    client, url = await register(gateway), gateway.mcp_url("vs")
    _, second, session_id = await refreshed_in_session(gateway, client, gateway)
    # The session's credential re-checks (revocation, expiry) now verify the refreshed token: the end
    # of the one it replaced does not end the session.
    front = gateway.bastion.front._fronts["vs"]
    guarded = [g.credential.authorization for g in front.guards.values()]
    assert guarded == [f"Bearer {second['access_token']}"]
    # A token refreshed again, and the previous one while it lives, are the same caller.
    third = await refreshed(gateway, client, second)
    await assert_logged_in_session(url, third["access_token"], session_id)
    assert (await post(url, second["access_token"], session_id, PING)).status_code == 200
    # Not back to a token that expires first (two issued in the same second expire together).
    [guard] = front.guards.values()
    assert guard.principal is not None and guard.principal.expires == jwt.decode(third["access_token"], options={"verify_signature": False})["exp"]


async def test_only_the_grant_behind_a_session_reaches_it_and_a_revoked_family_nothing(gateway: Running) -> None:
    client, url = await register(gateway), gateway.mcp_url("vs")
    first, second, session_id = await refreshed_in_session(gateway, client, gateway)
    unknown = await post(url, second["access_token"], uuid.uuid4().hex, PING)
    assert unknown.status_code == 404
    others = {
        "another grant of the same user and client": (await tokens_for(gateway, client, "vs", DEV))["access_token"],
        "a grant of the same user to another client": (await tokens_for(gateway, await register(gateway), "vs", DEV))["access_token"],
        "another user's grant to the same client": (await tokens_for(gateway, client, "vs", OTHER))["access_token"],
        "the same user's API token": await api_token_of(gateway, DEV),
    }
    for who, token in others.items():
        for body in (PING, SET_INFO, LOG_CALL):
            stolen = await post(url, token, session_id, body)
            assert (stolen.status_code, stolen.json()) == (404, unknown.json()), who
        async with httpx2.AsyncClient(timeout=30) as http:
            assert (await http.delete(url, headers=session_headers(session_id, token))).status_code == 404, who
    await assert_logged_in_session(url, second["access_token"], session_id)  # untouched, still the grant's
    # The first refresh token presented again: reuse, so the whole family is revoked, its live access
    # tokens with it. Neither the refreshed token nor the first reaches the session any more.
    replay = await token_request(gateway, client, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert replay.status_code == 400
    for token in (second["access_token"], first["access_token"]):
        assert (await post(url, token, session_id, PING)).status_code == 401
        assert (await post(url, token, session_id, LOG_CALL)).status_code == 401


@pytest.mark.parametrize("revoked", ["refresh_token", "access_token"])
async def test_a_grant_revoked_at_the_revocation_endpoint_reaches_its_session_with_none_of_its_tokens(
    gateway: Running, revoked: str
) -> None:
    """RFC 7009 2.1: revoking a refresh token also invalidates the access tokens of its grant. The
    session is the grant's, so every live access token of it (not only the one presented) stops."""
    client, url = await register(gateway), gateway.mcp_url("vs")
    first, second, session_id = await refreshed_in_session(gateway, client, gateway)
    form = {"client_id": client["client_id"], "client_secret": client["client_secret"], "token": second[revoked]}
    async with httpx2.AsyncClient(base_url=gateway.base_url) as http:
        assert (await http.post("/revoke", data={**form, "token_type_hint": revoked})).status_code == 200
    for token in (second["access_token"], first["access_token"]):
        assert (await post(url, token, session_id, PING)).status_code == 401
    again = await token_request(gateway, client, grant_type="refresh_token", refresh_token=second["refresh_token"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


async def test_a_refreshed_access_token_restores_its_session_on_another_replica() -> None:
    async with two_replicas() as (a, b):
        client = await register(a)
        # Replica b has never seen the session: it restores it from the record the first token's
        # grant keyed, with the log level set through replica a.
        _, second, session_id = await refreshed_in_session(a, client, b)
        await assert_logged_in_session(a.mcp_url("vs"), second["access_token"], session_id)
        unknown = await post(b.mcp_url("vs"), second["access_token"], uuid.uuid4().hex, PING)
        others = [
            (await tokens_for(a, client, "vs", DEV))["access_token"],
            (await tokens_for(a, client, "vs", OTHER))["access_token"],
            await api_token_of(a, DEV),
        ]
        for token in others:
            for replica in (a, b):
                stolen = await post(replica.mcp_url("vs"), token, session_id, PING)
                assert (stolen.status_code, stolen.json()) == (404, unknown.json())
        await assert_logged_in_session(b.mcp_url("vs"), second["access_token"], session_id)
