"""Class: concurrent changes of one upstream (and of what refers to it). Requests sent at once must each
get a clear answer (success, 400, 404 or 409 as problem+json, never a 500 or a 502), no change a
request was told succeeded may be lost, nothing may be left pointing at what is gone, and the pool must
end up connected to the upstream as it is stored."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bastion.core.models import UpstreamTokens
from bastion.store.sql.repo import SqlConfigRepo
from bastion.store.sql.user_tokens import SqlUpstreamTokens
from tests.attacks.test_concurrent_changes import N, _problems_are_clear, _statuses
from tests.e2e.test_pinning import mutable_fixture, snapshot_where
from tests.harness import Running, free_port, http_fixture, stdio_fixture
from tests.identity import PASSWORD, login, make_user, signed_in
from tests.vault.test_upstream_user_oauth import approve, browser, callback, provider, setup, start, whoami

pytestmark = pytest.mark.anyio


async def _served_as_stored(gateway: Running, name: str) -> None:
    """The pool connects `name` with the spec the store holds, and a call through it works."""
    stored = await gateway.bastion.gateway.repo.get_upstream(name)
    assert stored is not None
    assert gateway.bastion.pool.spec_of(name) == stored.spec
    await gateway.create_server({"name": f"check-{name}", "tools": [f"{name}__echo"]})
    async with gateway.client(f"check-{name}") as client:
        result = await client.call_tool(f"{name}__echo", {"text": "hi"})
    assert not result.is_error, result
    assert (await gateway.api.delete(f"/api/v1/servers/check-{name}")).status_code == 204


async def test_upstream_patched_at_once_keeps_every_change(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    with http_fixture() as fx:
        await gateway.register(fx.body("up"))
        for round in range(3):
            patches: list[dict[str, Any]] = [
                {"headers": {"x-round": str(round)}},
                {"url": f"{fx.url}?round={round}"},
            ]
            responses = await asyncio.gather(*(gateway.api.patch("/api/v1/upstreams/up", json=p) for p in patches))
            _problems_are_clear(list(responses), 200)
            stored = (await gateway.api.get("/api/v1/upstreams/up")).json()
            assert stored["url"] == f"{fx.url}?round={round}" and list(stored["headers"]) == ["x-round"], stored
            await _served_as_stored(gateway, "up")


async def test_same_upstream_field_patched_at_once(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    with http_fixture() as fx:
        await gateway.register(fx.body("up"))
        for round in range(2):
            urls = [f"{fx.url}?round={round}&n={i}" for i in range(6)]
            responses = await asyncio.gather(*(gateway.api.patch("/api/v1/upstreams/up", json={"url": u}) for u in urls))
            _problems_are_clear(list(responses), 200, 409)
            assert _statuses(list(responses))[200] >= 1
            stored = (await gateway.api.get("/api/v1/upstreams/up")).json()
            assert stored["url"] in urls, stored
            await _served_as_stored(gateway, "up")


async def test_team_deleted_while_an_upstream_is_moved_to_it(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    await gateway.register(stdio_fixture("fx"))
    for round in range(4):
        team = f"t{round}"
        assert (await gateway.api.post("/api/v1/teams", json={"name": team})).status_code == 201
        # An ownership change alone, and one that reconnects too (it takes longer to save).
        change: dict[str, Any] = {"team": team} if round % 2 else {"team": team, "env": {"ROUND": str(round)}}
        moved, deleted = await asyncio.gather(
            gateway.api.patch("/api/v1/upstreams/fx", json=change),
            gateway.api.delete(f"/api/v1/teams/{team}"),
        )
        _problems_are_clear([moved], 200, 400, 404)
        _problems_are_clear([deleted], 204, 409)
        assert not (moved.status_code == 200 and deleted.status_code == 204), (moved.text, deleted.text)
        stored = (await gateway.api.get("/api/v1/upstreams/fx")).json()
        teams = {t["name"] for t in (await gateway.api.get("/api/v1/teams")).json()["items"]}
        assert stored["team"] is None or stored["team"] in teams, (stored["team"], teams)
        if stored["team"] is not None:
            assert (await gateway.api.patch("/api/v1/upstreams/fx", json={"team": None})).status_code == 200


async def test_one_user_connects_an_upstream_twice_at_once(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    async with provider(gateway) as (_world, base):
        alice = (await setup(gateway, base))["alice"]
        for round in range(3):
            browsers = [browser() for _ in range(4)]
            try:
                urls = [
                    await approve(gateway, own, await start(gateway, alice), "alice@example.com", f"alice-gh{round}{i}")
                    for i, own in enumerate(browsers)
                ]
                pages = await asyncio.gather(*(callback(url, own) for url, own in zip(urls, browsers, strict=True)))
            finally:
                for own in browsers:
                    await own.aclose()
            assert [p.status_code for p in pages] == [200] * len(pages), [p.text for p in pages]
            seen = await whoami(gateway, alice)
            assert seen["x-account"] in {f"alice-gh{round}{i}" for i in range(len(browsers))}, seen


async def test_one_users_tokens_saved_at_once_as_two_replicas_would(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    store = SqlUpstreamTokens(gateway.bastion.engine, gateway.bastion.gateway.repo.envelope)
    await gateway.register(stdio_fixture("fx"))
    for round in range(4):
        user = (await make_user(gateway, f"carol{round}@example.com", "developer"))["id"]
        given = {f"at-{round}-{i}" for i in range(N)}
        await asyncio.gather(*(store.save_tokens("fx", user, UpstreamTokens(access_token=t)) for t in given))
        stored = await store.get_tokens("fx", user)
        assert stored is not None and stored.access_token in given, stored


async def test_one_approval_decided_at_once(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    await gateway.register(mutable_fixture("fx"))
    await gateway.create_server({"name": "vs", "upstreams": ["fx"]})
    async with gateway.client("vs") as client:
        for round in range(3):
            await client.call_tool("fx__redescribe", {"tool": "echo", "description": f"changed {round}"})
            await snapshot_where(gateway, lambda s: any(a.key == "echo" for a in s.approvals))
            [approval] = (await gateway.api.get("/api/v1/approvals")).json()["items"]
            decide = [f"/api/v1/approvals/{approval['id']}/{'approve' if i % 2 else 'reject'}" for i in range(N)]
            responses = await asyncio.gather(*(gateway.api.post(path) for path in decide))
            _problems_are_clear(list(responses), 200, 404)
            pins = (await gateway.bastion.gateway.repo.list_pins()).records
            assert [(p.kind, p.key) for p in pins if p.key == "echo"] == [("tool", "echo")], pins
            if (await gateway.api.get("/api/v1/approvals")).json()["items"]:
                assert (await gateway.api.post(f"/api/v1/approvals/{approval['id']}/approve")).status_code == 200


async def test_catalog_item_patched_at_once_keeps_every_change(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    await gateway.register(stdio_fixture("fx"))
    for round in range(3):
        patches: list[dict[str, Any]] = [{"description": f"described {round}"}, {"enabled": bool(round % 2)}]
        responses = await asyncio.gather(*(gateway.api.patch("/api/v1/tools/fx__add", json=p) for p in patches))
        _problems_are_clear(list(responses), 200)
        stored = (await gateway.api.get("/api/v1/tools/fx__add")).json()
        assert (stored["description"], stored["enabled"]) == (f"described {round}", bool(round % 2)), stored


async def test_two_tools_renamed_to_one_name_at_once(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    await gateway.register(stdio_fixture("fx"))
    tools = [t["gateway_name"] for t in (await gateway.api.get("/api/v1/tools")).json()["items"]]
    for round in range(3):
        name = f"fx__same{round}"
        responses = await asyncio.gather(*(gateway.api.patch(f"/api/v1/tools/{t}", json={"name": name}) for t in tools))
        _problems_are_clear(list(responses), 200, 409)
        assert _statuses(list(responses))[200] == 1, [r.text for r in responses]
        listed = [t["name"] for t in (await gateway.api.get("/api/v1/tools")).json()["items"]]
        assert listed.count(name) == 1, listed
        renamed = next(r.json()["gateway_name"] for r in responses if r.status_code == 200)
        assert (await gateway.api.patch(f"/api/v1/tools/{renamed}", json={"name": None})).status_code == 200



async def test_upstream_refreshed_while_patched(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    with http_fixture() as fx:
        await gateway.register(fx.body("up"))
        for round in range(3):
            refreshes = [gateway.api.post("/api/v1/upstreams/up/refresh") for _ in range(N)]
            patch = gateway.api.patch("/api/v1/upstreams/up", json={"url": f"{fx.url}?round={round}"})
            responses = await asyncio.gather(*refreshes[: N // 2], patch, *refreshes[N // 2 :])
            _problems_are_clear(list(responses), 200)
            assert (await gateway.api.get("/api/v1/upstreams/up")).json()["status"] == "healthy"
            await _served_as_stored(gateway, "up")



async def test_two_configurations_applied_at_once(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "tools": ["fx__echo"]})
    for round in range(3):
        exported = (await gateway.api.get("/api/v1/config")).json()
        docs = []
        for who in ("a", "b"):
            # Each changes vs, then adds the same server: the one that finds it added must not undo vs.
            servers = [{**s, "description": f"{who}{round}"} if s["name"] == "vs" else s for s in exported["servers"]]
            docs.append({**exported, "servers": [*servers, {"name": f"x{round}", "tools": ["fx__echo"]}]})
        responses = await asyncio.gather(*(gateway.api.post("/api/v1/config", content=json.dumps(d)) for d in docs))
        _problems_are_clear(list(responses), 200, 409)
        applied = {f"{who}{round}" for who, r in zip("ab", responses, strict=True) if r.status_code == 200}
        assert (await gateway.api.get("/api/v1/servers/vs")).json()["description"] in applied, [r.text for r in responses]


async def test_user_signs_in_while_deleted(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    for round in range(3):
        email = f"gone{round}@example.com"
        user = await make_user(gateway, email, "developer")
        logins = [login(gateway, email) for _ in range(6)]  # each checks a password hash: slow on purpose
        responses = await asyncio.gather(*logins[:3], gateway.api.delete(f"/api/v1/users/{user['id']}"), *logins[3:])
        _problems_are_clear(list(responses), 200, 204, 401)
        for r in responses:
            if r.status_code == 200:  # signed in before the deletion: the session went with the user
                session = {"Authorization": f"Bearer {r.json()['token']}"}
                assert (await gateway.api.get("/api/v1/auth/me", headers=session)).status_code == 401


async def test_user_creates_api_tokens_while_deleted(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    for round in range(3):
        email = f"leaving{round}@example.com"
        user = await make_user(gateway, email, "developer")
        async with signed_in(gateway, email) as session:
            creates = [session.post("/api/v1/tokens", json={"name": f"t{i}", "permissions": ["read"]}) for i in range(6)]
            responses = await asyncio.gather(*creates[:3], gateway.api.delete(f"/api/v1/users/{user['id']}"), *creates[3:])
        _problems_are_clear(list(responses), 201, 204, 401, 404)
        # A token answered 201 was stored before the deletion, which took it along: none outlives its user.
        left = (await gateway.api.get("/api/v1/tokens")).json()["items"]
        assert [t for t in left if t["user"] == user["id"]] == [], [r.text for r in responses]


async def test_an_api_token_for_a_user_deleted_meanwhile_is_not_found(
    any_db_gateway: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race above made certain: the user's session let the request in, then the user was deleted
    # before the token was stored. A 404 naming the user, and nothing stored (it was a 201, and a token
    # left behind for nobody).
    gateway = any_db_gateway
    user = await make_user(gateway, "leaving@example.com", "developer")
    store = SqlConfigRepo.create_api_token

    async def deleted_first(repo: SqlConfigRepo, token: Any, token_hash: str) -> None:
        assert (await gateway.api.delete(f"/api/v1/users/{user['id']}")).status_code == 204
        await store(repo, token, token_hash)

    async with signed_in(gateway, "leaving@example.com") as session:
        monkeypatch.setattr(SqlConfigRepo, "create_api_token", deleted_first)
        created = await session.post("/api/v1/tokens", json={"name": "t", "permissions": ["read"]})
    _problems_are_clear([created], 404)
    assert created.json()["detail"] == f"user {user['id']!r} does not exist", created.text
    monkeypatch.undo()
    assert [t for t in (await gateway.api.get("/api/v1/tokens")).json()["items"] if t["user"] == user["id"]] == []


async def test_user_signs_in_while_their_password_is_changed(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    for round in range(3):
        email = f"moved{round}@example.com"
        user = await make_user(gateway, email, "developer")
        change = gateway.api.patch(f"/api/v1/users/{user['id']}", json={"password": f"{PASSWORD}-{round}"})
        logins = [login(gateway, email) for _ in range(6)]
        responses = await asyncio.gather(*logins[:3], change, *logins[3:])
        _problems_are_clear(list(responses), 200, 401)
        for r in responses:
            if r.status_code == 200 and "token" in r.json():  # with the old password: ended by the change
                session = {"Authorization": f"Bearer {r.json()['token']}"}
                assert (await gateway.api.get("/api/v1/auth/me", headers=session)).status_code == 401


async def test_upstream_patched_at_once_with_one_change_that_fails(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    with http_fixture() as fx:
        await gateway.register(fx.body("up"))
        for round in range(3):
            good = gateway.api.patch("/api/v1/upstreams/up", json={"url": f"{fx.url}?round={round}"})
            bad = gateway.api.patch("/api/v1/upstreams/up", json={"url": f"http://127.0.0.1:{free_port()}/mcp"})
            responses = await asyncio.gather(bad, good) if round % 2 else await asyncio.gather(good, bad)
            _problems_are_clear(list(responses), 200, 502)  # the one nobody answers at: its 502, nothing saved
            assert _statuses(list(responses)) == {200: 1, 502: 1}, [r.text for r in responses]
            assert (await gateway.api.get("/api/v1/upstreams/up")).json()["url"] == f"{fx.url}?round={round}"
            await _served_as_stored(gateway, "up")
