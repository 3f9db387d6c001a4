"""Class: concurrent REST changes of one thing. Requests sent at once must each get a clear answer
(success, 404 or 409 as problem+json, never a 500), no change a request was told succeeded may be
lost, and what is stored afterwards must be what one of the requests asked for."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.harness import Running, stdio_fixture
from tests.identity import PASSWORD

pytestmark = pytest.mark.anyio

N = 12


def _statuses(responses: list[httpx2.Response]) -> Counter[int]:
    return Counter(r.status_code for r in responses)


def _problems_are_clear(responses: list[httpx2.Response], *allowed: int) -> None:
    for r in responses:
        assert r.status_code in allowed, (r.status_code, r.text)
        if r.status_code >= 400:
            assert r.headers["content-type"].startswith("application/problem+json"), r.text


async def test_team_member_added_at_once(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    for round in range(4):
        team, email = f"red{round}", f"ada{round}@example.com"
        assert (await gateway.api.post("/api/v1/teams", json={"name": team})).status_code == 201
        user = await gateway.api.post("/api/v1/users", json={"email": email, "password": PASSWORD})
        assert user.status_code == 201
        responses = await asyncio.gather(
            *(gateway.api.post(f"/api/v1/teams/{team}/members", json={"user": email}) for _ in range(N))
        )
        _problems_are_clear(list(responses), 200)
        assert (await gateway.api.get(f"/api/v1/teams/{team}")).json()["members"] == [user.json()["id"]]


async def test_team_deleted_while_members_are_added(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    emails = [f"u{i}@example.com" for i in range(N)]
    for email in emails:
        assert (await gateway.api.post("/api/v1/users", json={"email": email, "password": PASSWORD})).status_code == 201
    for _ in range(3):
        assert (await gateway.api.post("/api/v1/teams", json={"name": "blue"})).status_code == 201
        adds = [gateway.api.post("/api/v1/teams/blue/members", json={"user": e}) for e in emails]
        responses = await asyncio.gather(*adds[: N // 2], gateway.api.delete("/api/v1/teams/blue"), *adds[N // 2 :])
        _problems_are_clear(list(responses), 200, 204, 404)
        assert (await gateway.api.get("/api/v1/teams/blue")).status_code == 404
        for user in (await gateway.api.get("/api/v1/users")).json()["items"]:
            assert "blue" not in user["teams"], user


async def test_same_team_created_at_once(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    responses = await asyncio.gather(*(gateway.api.post("/api/v1/teams", json={"name": "green"}) for _ in range(N)))
    _problems_are_clear(list(responses), 201, 409)
    assert _statuses(list(responses))[201] == 1


async def test_same_user_created_at_once(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    body = {"email": "bob@example.com", "password": PASSWORD}
    responses = await asyncio.gather(*(gateway.api.post("/api/v1/users", json=body) for _ in range(N)))
    _problems_are_clear(list(responses), 201, 409)
    assert _statuses(list(responses))[201] == 1


async def test_same_server_created_at_once(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    await gateway.register(stdio_fixture("fx"))
    body = {"name": "vs", "tools": ["fx__echo"]}
    responses = await asyncio.gather(*(gateway.api.post("/api/v1/servers", json=body) for _ in range(N)))
    _problems_are_clear(list(responses), 201, 409)
    assert _statuses(list(responses))[201] == 1


async def test_same_upstream_registered_at_once(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    responses = await asyncio.gather(*(gateway.api.post("/api/v1/upstreams", json=stdio_fixture("fx")) for _ in range(6)))
    _problems_are_clear(list(responses), 201, 409)
    assert _statuses(list(responses))[201] == 1
    await gateway.create_server({"name": "vs", "tools": ["fx__echo"]})
    async with gateway.client("vs") as client:
        result = await client.call_tool("fx__echo", {"text": "hi"})
    assert not result.is_error, result


async def test_server_patched_at_once_keeps_every_change(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "tools": ["fx__echo"]})
    patches: list[dict[str, Any]] = [
        {"description": "described"},
        {"tools": ["fx__echo", "fx__add"]},
    ]
    for _ in range(3):
        responses = await asyncio.gather(*(gateway.api.patch("/api/v1/servers/vs", json=p) for p in patches))
        _problems_are_clear(list(responses), 200)
        stored = (await gateway.api.get("/api/v1/servers/vs")).json()
        assert stored["description"] == "described", stored
        assert sorted(stored["tools"]) == ["fx__add", "fx__echo"], stored
        reset = await gateway.api.patch("/api/v1/servers/vs", json={"description": None, "tools": ["fx__echo"]})
        assert reset.status_code == 200, reset.text


async def test_upstream_deleted_while_a_server_is_created_on_it(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    for round in range(3):
        name = f"fx{round}"
        await gateway.register(stdio_fixture(name))
        created, deleted = await asyncio.gather(
            gateway.api.post("/api/v1/servers", json={"name": f"vs{round}", "tools": [f"{name}__echo"]}),
            gateway.api.delete(f"/api/v1/upstreams/{name}"),
        )
        _problems_are_clear([created], 201, 400, 404, 409)
        _problems_are_clear([deleted], 204, 409)
        assert not (created.status_code == 201 and deleted.status_code == 204), (created.text, deleted.text)


REGISTRY = Path(__file__).parents[1] / "upstreams" / "registry"


async def test_registry_source_added_refreshed_and_deleted_at_once(any_db_gateway: Running, tmp_path: Path) -> None:
    gateway = any_db_gateway
    for name in ("pypi-weather.json", "npm-everything.json", "oci-database.json"):
        (tmp_path / name).write_text((REGISTRY / name).read_text())
    body = {"name": "local", "path": str(tmp_path)}
    added = await asyncio.gather(*(gateway.api.post("/api/v1/registries", json=body) for _ in range(N)))
    _problems_are_clear(list(added), 201, 409)
    assert _statuses(list(added))[201] == 1
    refreshed = await asyncio.gather(*(gateway.api.post("/api/v1/registries/local/refresh") for _ in range(N)))
    _problems_are_clear(list(refreshed), 200)
    listed = (await gateway.api.get("/api/v1/registries/local")).json()
    assert listed["entries"] == 3, listed
    refreshes = [gateway.api.post("/api/v1/registries/local/refresh") for _ in range(N)]
    mixed = await asyncio.gather(*refreshes[: N // 2], gateway.api.delete("/api/v1/registries/local"), *refreshes[N // 2 :])
    _problems_are_clear(list(mixed), 200, 204, 404)
    assert (await gateway.api.get("/api/v1/registries/local")).status_code == 404


async def test_team_deleted_while_a_server_is_given_to_it(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    await gateway.register(stdio_fixture("fx"))
    for round in range(3):
        team = f"t{round}"
        assert (await gateway.api.post("/api/v1/teams", json={"name": team})).status_code == 201
        server, upstream, deleted = await asyncio.gather(
            gateway.api.post("/api/v1/servers", json={"name": f"vs{round}", "tools": ["fx__echo"], "team": team}),
            gateway.api.post("/api/v1/upstreams", json={**stdio_fixture(f"up{round}"), "team": team}),
            gateway.api.delete(f"/api/v1/teams/{team}"),
        )
        _problems_are_clear([server, upstream], 201, 400)
        _problems_are_clear([deleted], 204, 409)
        if deleted.status_code == 204:
            assert server.status_code == upstream.status_code == 400, (server.text, upstream.text)


async def test_server_created_and_deleted_at_once(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    await gateway.register(stdio_fixture("fx"))
    for _ in range(3):
        body = {"name": "vs", "tools": ["fx__echo"]}
        calls = [gateway.api.post("/api/v1/servers", json=body) if i % 2 else gateway.api.delete("/api/v1/servers/vs") for i in range(N)]
        responses = await asyncio.gather(*calls)
        _problems_are_clear(list(responses), 201, 204, 404, 409)
        stored = await gateway.api.get("/api/v1/servers/vs")
        listed = [s["name"] for s in (await gateway.api.get("/api/v1/servers")).json()["items"]]
        assert (stored.status_code == 200) == ("vs" in listed)


async def test_token_used_while_revoked(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "tools": ["fx__echo"]})
    for _ in range(3):
        made = await gateway.api.post("/api/v1/tokens", json={"name": "t", "servers": ["vs"], "permissions": ["mcp", "read"]})
        assert made.status_code == 201, made.text
        headers = {"Authorization": f"Bearer {made.json()['token']}"}
        async with httpx2.AsyncClient(base_url=gateway.base_url, headers=headers, timeout=60) as client:
            uses = [client.get("/api/v1/servers") for _ in range(N)]
            responses = await asyncio.gather(*uses[: N // 2], gateway.api.delete(f"/api/v1/tokens/{made.json()['id']}"), *uses[N // 2 :])
            _problems_are_clear(list(responses), 200, 204, 401)
            after = await asyncio.gather(*(client.get("/api/v1/servers") for _ in range(N)))
            assert _statuses(list(after)) == {401: N}
