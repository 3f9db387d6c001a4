"""Class: lost updates across replicas, continued (tests/attacks/test_replica_lost_updates.py has the
first ones and the helpers). A rediscovery, a configuration apply, and the other writes a replica
makes on what it read before another replica saved: what the other one saved must stay stored, or
the request is answered 409, never overwritten in silence."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from sqlalchemy.sql.dml import UpdateBase

from bastion.core.models import CatalogItem, Discovery, UpstreamSpec, VirtualServerSpec
from tests.attacks.test_replica_lost_updates import hold_write, two_replicas
from tests.harness import Running, stdio_fixture

pytestmark = pytest.mark.anyio


class _HeldConnection:
    def __init__(self, conn: Any, hold: Callable[[Any], Awaitable[None]]) -> None:
        self._conn, self._hold = conn, hold

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        await self._hold(statement)
        return await self._conn.execute(statement, *args, **kwargs)


class _HeldEngine:
    """`engine`, whose transactions pass each statement by `hold` first."""

    def __init__(self, engine: Any, hold: Callable[[Any], Awaitable[None]]) -> None:
        self._engine, self._hold = engine, hold

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[_HeldConnection]:
        async with self._engine.begin() as conn:
            yield _HeldConnection(conn, self._hold)


def hold_first_change_of(monkeypatch: pytest.MonkeyPatch, replica: Running, table: str) -> tuple[anyio.Event, anyio.Event]:
    """Hold `replica`'s first statement that writes rows of `table` (inside its store's transaction,
    after whatever that transaction read) until the test lets it go: (arrived, go)."""
    repo = replica.bastion.gateway.repo
    arrived, go, first = anyio.Event(), anyio.Event(), [True]

    async def hold(statement: Any) -> None:
        if first[0] and isinstance(statement, UpdateBase) and statement.table.name == table:
            first[0] = False
            arrived.set()
            with anyio.fail_after(20):
                await go.wait()

    monkeypatch.setattr(repo, "engine", _HeldEngine(repo.engine, hold))
    return arrived, go


def _redescribed(item: CatalogItem) -> CatalogItem:
    return item.model_copy(update={"definition": {**item.definition, "description": "said otherwise now"}})


async def test_tool_disabled_on_one_replica_while_another_rediscovers_its_upstream_stays_disabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rediscovery replaced an upstream's items from what it read of them, so an edit another replica
    saved between that read and the replacement was undone: a tool an admin had just disabled (told
    200) was enabled again."""
    async with two_replicas(tmp_path) as (a, b):
        await a.register(stdio_fixture("fx"))
        await b.bastion.gateway.reload()
        pool = a.bastion.gateway.pool
        discover = pool.rediscover

        async def the_upstream_changed_a_description(name: str, user: str | None = None) -> Discovery:
            found = await discover(name, user)
            return found.model_copy(update={"items": tuple(_redescribed(i) if i.key == "echo" else i for i in found.items)})

        monkeypatch.setattr(pool, "rediscover", the_upstream_changed_a_description)
        arrived, go = hold_first_change_of(monkeypatch, a, "catalog_items")
        async with anyio.create_task_group() as tg:
            tg.start_soon(a.bastion.gateway.refresh_upstream, "fx")
            with anyio.fail_after(20):
                await arrived.wait()
            edited = await b.api.patch("/api/v1/tools/fx__echo", json={"enabled": False, "description": "ours"})
            assert edited.status_code == 200, edited.text
            go.set()
        echo = next(i for i in await b.bastion.gateway.repo.list_items() if (i.kind, i.key) == ("tool", "echo"))
        assert (echo.enabled, echo.description_override) == (False, "ours"), echo
        assert echo.definition["description"] == "said otherwise now"  # and the rediscovery is saved


def count_discoveries(monkeypatch: pytest.MonkeyPatch, replica: Running) -> dict[str, int]:
    """How many times `replica` connects to an upstream to discover it (registering or changing it), by name."""
    pool, counted = replica.bastion.gateway.pool, {}
    discover = pool.discover

    async def counting(spec: UpstreamSpec) -> Discovery:
        counted[spec.name] = counted.get(spec.name, 0) + 1
        return await discover(spec)

    monkeypatch.setattr(pool, "discover", counting)
    return counted


async def held_meanwhile(
    request: Awaitable[httpx2.Response], held: tuple[anyio.Event, anyio.Event], meanwhile: Callable[[], Awaitable[object]]
) -> httpx2.Response:
    """Send `request`; once it is `held` (arrived, go), do `meanwhile` elsewhere, then let it go on."""
    arrived, go = held
    replies: list[httpx2.Response] = []

    async def send() -> None:
        replies.append(await request)

    async with anyio.create_task_group() as tg:
        tg.start_soon(send)
        with anyio.fail_after(20):
            await arrived.wait()
        await meanwhile()
        go.set()
    return replies[0]


def rotate_secret(replica: Running) -> Callable[[], Awaitable[None]]:
    """Another replica's change of upstream `fx` that the document leaves out: a new secret."""

    async def rotate() -> None:
        assert (await replica.api.patch("/api/v1/upstreams/fx", json={"env": {"TOKEN": "new"}})).status_code == 200

    return rotate


async def test_configuration_that_loses_a_step_to_another_replica_goes_on_from_what_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan whose step lost to another replica's change took back the steps it had applied, then applied
    them all again: an upstream the document adds was registered, deleted and registered again (its
    discovery and the approval of its tools in the applier's name made twice)."""
    async with two_replicas(tmp_path) as (a, b):
        await a.register({**stdio_fixture("fx"), "env": {"TOKEN": "old"}})
        await b.bastion.gateway.reload()
        doc = (await a.api.get("/api/v1/config")).json()
        doc["upstreams"][0]["visibility"] = "public"
        doc["upstreams"].insert(0, stdio_fixture("added"))  # planned before `fx`: its name comes first
        discovered = count_discoveries(monkeypatch, a)
        held = hold_write(monkeypatch, a, "update_upstream_spec")  # `added` is registered; `fx` is next
        reply = await held_meanwhile(a.api.post("/api/v1/config", json=doc), held, rotate_secret(b))
        assert reply.status_code == 200, reply.text
        assert discovered == {"added": 1}, discovered
        stored = await b.bastion.gateway.repo.get_upstream("fx")
        assert stored is not None
        assert (stored.spec.visibility, stored.spec.env) == ("public", {"TOKEN": "new"}), stored.spec
        approvals = [r for r in (await b.bastion.gateway.repo.list_pins()).records if r.upstream == "added"]
        assert approvals and all(r.approved is not None for r in approvals), approvals


async def test_configuration_does_not_give_a_server_made_again_on_another_replica_back_its_old_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A document saved a server with the owner this replica had read, without checking it was still
    that server: one deleted and made again by another user on another replica meanwhile was handed
    back to its former owner."""
    async with two_replicas(tmp_path) as (a, b):
        await a.register(stdio_fixture("fx"))
        await a.bastion.gateway.save_server(VirtualServerSpec(name="vs", upstreams=("fx",), owner="former"), create=True)
        await b.bastion.gateway.reload()
        doc = (await a.api.get("/api/v1/config")).json()
        doc["servers"][0]["description"] = "from the document"
        held = hold_write(monkeypatch, a, "save_server")

        async def meanwhile() -> None:
            assert (await b.api.delete("/api/v1/servers/vs")).status_code == 204
            await b.bastion.gateway.save_server(VirtualServerSpec(name="vs", upstreams=("fx",), owner="newer"), create=True)

        reply = await held_meanwhile(a.api.post("/api/v1/config", json=doc), held, meanwhile)
        assert reply.status_code == 200, reply.text
        stored = await b.bastion.gateway.repo.get_server("vs")
        assert stored is not None and (stored.owner, stored.description) == ("newer", "from the document"), stored


async def test_configuration_that_fails_does_not_take_back_a_step_over_another_replicas_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan that failed took back the steps it had applied by writing what it had read before them,
    whatever was stored since: a secret another replica rotated after the step was put back to the
    old one (that replica had answered 200)."""
    async with two_replicas(tmp_path) as (a, b):
        await a.register({**stdio_fixture("fx"), "env": {"TOKEN": "old"}})
        await b.bastion.gateway.reload()
        doc = (await a.api.get("/api/v1/config")).json()
        doc["upstreams"][0]["visibility"] = "public"
        doc["upstreams"].append({"name": "unreachable", "transport": "streamable-http", "url": "http://127.0.0.1:9/mcp"})
        pool, reached, go = a.bastion.gateway.pool, anyio.Event(), anyio.Event()
        discover = pool.discover

        async def after_the_other_replica(spec: UpstreamSpec) -> Discovery:
            if spec.name == "unreachable":  # planned after `fx`, which is changed by now
                reached.set()
                with anyio.fail_after(20):
                    await go.wait()
            return await discover(spec)

        monkeypatch.setattr(pool, "discover", after_the_other_replica)
        reply = await held_meanwhile(a.api.post("/api/v1/config", json=doc), (reached, go), rotate_secret(b))
        assert reply.status_code >= 400, reply.text
        assert "could not be taken back" in reply.json()["detail"], reply.json()
        stored = await b.bastion.gateway.repo.get_upstream("fx")
        assert stored is not None and stored.spec.env == {"TOKEN": "new"}, stored.spec


async def test_a_team_is_not_deleted_on_one_replica_while_it_owns_an_upstream_given_to_it_on_another(tmp_path: Path) -> None:
    """A team was deleted if this replica's catalog showed it owning nothing: an upstream another replica
    had just given it stayed owned by a team that no longer was, and a team made again under the name
    (by anyone who may make teams) would own it."""
    async with two_replicas(tmp_path) as (a, b):
        await a.register(stdio_fixture("fx"))
        assert (await a.api.post("/api/v1/teams", json={"name": "t"})).status_code == 201
        await b.bastion.gateway.reload()
        assert (await b.api.patch("/api/v1/upstreams/fx", json={"team": "t"})).status_code == 200
        deleted = await a.api.delete("/api/v1/teams/t")  # a has not read b's change
        assert deleted.status_code == 409, deleted.text
        assert "still owns" in deleted.json()["detail"], deleted.json()
        stored = await a.bastion.gateway.repo.get_upstream("fx")
        assert stored is not None and stored.spec.team == "t"
        assert (await a.api.get("/api/v1/teams/t")).status_code == 200


async def test_an_upstream_is_not_given_to_a_team_deleted_on_another_replica_while_it_is_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other order: the team was there when the moving replica checked it, and gone when it saved."""
    async with two_replicas(tmp_path) as (a, b):
        await a.register(stdio_fixture("fx"))
        assert (await a.api.post("/api/v1/teams", json={"name": "t"})).status_code == 201
        await b.bastion.gateway.reload()
        held = hold_write(monkeypatch, b, "update_upstream_spec")  # the team was there when checked

        async def delete_team() -> None:
            assert (await a.api.delete("/api/v1/teams/t")).status_code == 204

        moved = await held_meanwhile(b.api.patch("/api/v1/upstreams/fx", json={"team": "t"}), held, delete_team)
        assert moved.status_code == 400 and "no such team" in moved.text, moved.text
        stored = await a.bastion.gateway.repo.get_upstream("fx")
        assert stored is not None and stored.spec.team is None, stored.spec
