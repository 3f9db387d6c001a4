"""Class: lost updates across replicas. Two replicas on one database each change the same upstream,
virtual server or catalog item, both on what they read before either saved. Each change a request
was told succeeded must be stored (the second is made again on what the first saved), and a change
that keeps losing is answered 409 problem+json, never saved over the other."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from bastion.core.errors import Conflict
from tests.harness import Running, http_fixture, serve, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def two_replicas(tmp_path: Path) -> AsyncIterator[tuple[Running, Running]]:
    """Two gateways on one database (one PostgreSQL database in PostgreSQL mode), with no change feed
    between them: each knows the other's changes only from the store, the worst case for a replica."""
    url = f"sqlite+aiosqlite:///{tmp_path}/bastion.db"
    async with serve(settings_for(url)) as a, serve(settings_for(url)) as b:
        yield a, b


def hold_first_writes(monkeypatch: pytest.MonkeyPatch, method: str, *replicas: Running) -> None:
    """Hold each replica's first call of its store's `method` (the save of a change) until every replica
    has made one: both changes are then made on what was stored before either saved."""
    arrived = anyio.Event()
    waiting = [len(replicas)]
    for replica in replicas:
        repo = replica.bastion.gateway.repo
        first = [True]

        async def write(*args: Any, _save: Callable[..., Awaitable[None]] = getattr(repo, method), _first: list[bool] = first, **kwargs: Any) -> None:
            if _first[0]:
                _first[0] = False
                waiting[0] -= 1
                if not waiting[0]:
                    arrived.set()
                with anyio.fail_after(20):
                    await arrived.wait()
            await _save(*args, **kwargs)

        monkeypatch.setattr(repo, method, write)


async def at_once(*requests: Awaitable[httpx2.Response]) -> list[httpx2.Response]:
    """The responses to `requests` sent together, in their order."""
    responses: dict[int, httpx2.Response] = {}

    async def send(index: int, request: Awaitable[httpx2.Response]) -> None:
        responses[index] = await request

    async with anyio.create_task_group() as tg:
        for index, request in enumerate(requests):
            tg.start_soon(send, index, request)
    return [responses[index] for index in range(len(requests))]


def _all_ok(responses: list[httpx2.Response]) -> None:
    for response in responses:
        assert response.status_code == 200, response.text


async def test_upstream_patched_on_two_replicas_keeps_both_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with http_fixture() as fx:
        async with two_replicas(tmp_path) as (a, b):
            await a.register(fx.body("up"))
            await b.bastion.gateway.reload()
            hold_first_writes(monkeypatch, "update_upstream_spec", a, b)
            # Both reconnect (a change of where and how it is reached): discovery, then the save.
            _all_ok(await at_once(
                a.api.patch("/api/v1/upstreams/up", json={"headers": {"x-from": "a"}}),
                b.api.patch("/api/v1/upstreams/up", json={"url": f"{fx.url}?from=b"}),
            ))
            stored = await a.bastion.gateway.repo.get_upstream("up")
            assert stored is not None
            assert stored.spec.url == f"{fx.url}?from=b" and stored.spec.headers == {"x-from": "a"}, stored.spec


async def test_upstream_owner_change_on_one_replica_and_reconnect_on_another_keep_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with two_replicas(tmp_path) as (a, b):
        await a.register(stdio_fixture("fx"))
        await b.bastion.gateway.reload()
        hold_first_writes(monkeypatch, "update_upstream_spec", a, b)
        # One only changes who sees it and its pin mode (saved at once), the other its environment.
        _all_ok(await at_once(
            a.api.patch("/api/v1/upstreams/fx", json={"visibility": "public", "pin": "warn"}),
            b.api.patch("/api/v1/upstreams/fx", json={"env": {"FROM": "b"}}),
        ))
        stored = await b.bastion.gateway.repo.get_upstream("fx")
        assert stored is not None
        assert (stored.spec.visibility, stored.spec.pin, stored.spec.env) == ("public", "warn", {"FROM": "b"}), stored.spec
        # Each replica answers with what is stored once it has read it again.
        for replica in (a, b):
            await replica.bastion.gateway.reload()
            shown = (await replica.api.get("/api/v1/upstreams/fx")).json()
            assert (shown["visibility"], shown["pin"], list(shown["env"])) == ("public", "warn", ["FROM"]), shown


async def test_upstream_change_that_keeps_losing_is_a_clear_409(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with two_replicas(tmp_path) as (a, b):
        await a.register(stdio_fixture("fx"))
        await b.bastion.gateway.reload()
        repo = b.bastion.gateway.repo
        read = repo.get_upstream

        async def always_stale(name: str) -> Any:
            # As if another replica saved it every time between this replica's read and its save.
            found = await read(name)
            return found.model_copy(update={"revision": getattr(found, "revision", 0) - 1}) if found is not None else None

        monkeypatch.setattr(repo, "get_upstream", always_stale)
        response = await b.api.patch("/api/v1/upstreams/fx", json={"visibility": "public"})
        assert response.status_code == 409, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "changed by other requests at the same time" in response.json()["detail"]
        monkeypatch.undo()
        stored = await repo.get_upstream("fx")
        assert stored is not None and stored.spec.visibility == "private"


async def test_server_patched_on_two_replicas_keeps_both_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with two_replicas(tmp_path) as (a, b):
        await a.register(stdio_fixture("fx"))
        await a.create_server({"name": "vs", "upstreams": ["fx"]})
        await b.bastion.gateway.reload()
        hold_first_writes(monkeypatch, "save_server", a, b)
        _all_ok(await at_once(
            a.api.patch("/api/v1/servers/vs", json={"description": "from a"}),
            b.api.patch("/api/v1/servers/vs", json={"prefix": "never"}),
        ))
        stored = await a.bastion.gateway.repo.get_server("vs")
        assert stored is not None
        assert (stored.description, stored.prefix) == ("from a", "never"), stored


async def test_upstream_deleted_on_one_replica_while_its_server_is_patched_on_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with two_replicas(tmp_path) as (a, b):
        await a.register(stdio_fixture("fx"))
        await a.register(stdio_fixture("other"))
        await a.create_server({"name": "vs", "upstreams": ["fx", "other"]})
        await b.bastion.gateway.reload()
        # Deleting `fx` takes it out of `vs` (force) while the other replica changes `vs`.
        hold_first_writes(monkeypatch, "save_server", a, b)
        deleted, patched = await at_once(
            a.api.delete("/api/v1/upstreams/fx?force=true"),
            b.api.patch("/api/v1/servers/vs", json={"description": "from b"}),
        )
        assert deleted.status_code == 204, deleted.text
        assert patched.status_code == 200, patched.text
        stored = await a.bastion.gateway.repo.get_server("vs")
        assert stored is not None
        assert (stored.description, stored.upstreams) == ("from b", ("other",)), stored


async def test_tool_patched_on_two_replicas_keeps_both_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with two_replicas(tmp_path) as (a, b):
        await a.register(stdio_fixture("fx"))
        await b.bastion.gateway.reload()
        hold_first_writes(monkeypatch, "update_item", a, b)
        _all_ok(await at_once(
            a.api.patch("/api/v1/tools/fx__echo", json={"name": "fx__say"}),
            b.api.patch("/api/v1/tools/fx__echo", json={"description": "from b"}),
        ))
        tool = next(i for i in await a.bastion.gateway.repo.list_items() if i.kind == "tool" and i.key == "echo")
        assert (tool.name_override, tool.description_override) == ("fx__say", "from b"), tool


async def test_configuration_applied_on_one_replica_keeps_a_secret_rotated_on_another(tmp_path: Path) -> None:
    async with two_replicas(tmp_path) as (a, b):
        await a.register({**stdio_fixture("fx"), "env": {"TOKEN": "old"}})
        await b.bastion.gateway.reload()
        doc = (await a.api.get("/api/v1/config")).json()
        assert doc["upstreams"][0]["env"]["TOKEN"].startswith("${")  # kept as stored when applied
        # Another replica rotates the secret; this one has not read it yet when it plans the document.
        assert (await b.api.patch("/api/v1/upstreams/fx", json={"env": {"TOKEN": "new"}})).status_code == 200
        doc["upstreams"][0]["visibility"] = "public"
        response = await a.api.post("/api/v1/config", json=doc)
        assert response.status_code == 200, response.text
        stored = await a.bastion.gateway.repo.get_upstream("fx")
        assert stored is not None
        assert (stored.spec.visibility, stored.spec.env) == ("public", {"TOKEN": "new"}), stored.spec


async def test_a_change_that_keeps_losing_stops_with_a_conflict() -> None:
    from bastion.control.stale import on_fresh_state  # here: the other tests also run on a build without it
    from bastion.core.errors import StaleWrite

    tries = 0
    refreshed = 0

    async def attempt() -> None:
        nonlocal tries
        tries += 1
        raise StaleWrite("changed meanwhile")

    async def refresh() -> None:
        nonlocal refreshed
        refreshed += 1

    with pytest.raises(Conflict) as raised:
        await on_fresh_state("upstream 'x'", attempt, refresh, attempts=3)
    assert type(raised.value) is Conflict and "upstream 'x'" in raised.value.detail
    assert (tries, refreshed) == (3, 2)


def hold_write(monkeypatch: pytest.MonkeyPatch, replica: Running, method: str) -> tuple[anyio.Event, anyio.Event]:
    """Hold `replica`'s first call of its store's `method` until the test lets it go: (arrived, go)."""
    repo = replica.bastion.gateway.repo
    save, arrived, go, first = getattr(repo, method), anyio.Event(), anyio.Event(), [True]

    async def held(*args: Any, **kwargs: Any) -> Any:
        if first[0]:
            first[0] = False
            arrived.set()
            with anyio.fail_after(20):
                await go.wait()
        return await save(*args, **kwargs)

    monkeypatch.setattr(repo, method, held)
    return arrived, go


async def test_a_change_read_before_the_upstream_was_made_again_is_not_saved_over_the_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Revisions used to start at 0 for every new row: a change read from an upstream that another
    replica then deleted and registered again under its name matched the new row, and wrote the
    deleted one's settings (its environment, its secrets) over it."""
    async with two_replicas(tmp_path) as (a, b):
        await a.register({**stdio_fixture("fx"), "env": {"TOKEN": "first-owner"}})
        await b.bastion.gateway.reload()
        arrived, go = hold_write(monkeypatch, b, "update_upstream_spec")
        async with anyio.create_task_group() as tg:
            replies: list[httpx2.Response] = []

            async def patch() -> None:
                replies.append(await b.api.patch("/api/v1/upstreams/fx", json={"visibility": "public"}))

            tg.start_soon(patch)
            with anyio.fail_after(20):
                await arrived.wait()
            assert (await a.api.delete("/api/v1/upstreams/fx")).status_code == 204
            await a.register({**stdio_fixture("fx"), "env": {"TOKEN": "second-owner"}})
            go.set()
        assert replies[0].status_code == 200, replies[0].text
        stored = await a.bastion.gateway.repo.get_upstream("fx")
        assert stored is not None and stored.spec.env == {"TOKEN": "second-owner"}, stored.spec
        assert stored.spec.visibility == "public"  # made again on the new upstream


async def test_a_replica_whose_change_lost_connects_the_upstream_as_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A change refused as stale put the pool back on the spec it was made on, although the store
    (and, by the change feed, this replica's catalog) held another replica's since: both disabled an
    upstream, both answered 200, and one replica kept its process running."""
    async with two_replicas(tmp_path) as (a, b):
        await a.register(stdio_fixture("fx"))
        await b.bastion.gateway.reload()
        assert b.bastion.gateway.pool.spec_of("fx") is not None
        arrived, go = hold_write(monkeypatch, b, "update_upstream_spec")
        async with anyio.create_task_group() as tg:
            replies: list[httpx2.Response] = []

            async def disable() -> None:
                replies.append(await b.api.patch("/api/v1/upstreams/fx", json={"enabled": False}))

            tg.start_soon(disable)
            with anyio.fail_after(20):
                await arrived.wait()
            assert (await a.api.patch("/api/v1/upstreams/fx", json={"enabled": False})).status_code == 200
            await b.bastion.gateway.reload()  # what the change feed does when a replica saves
            go.set()
        assert replies[0].status_code == 200, replies[0].text
        held = b.bastion.gateway.pool.spec_of("fx")
        assert held is None or not held.enabled, held
