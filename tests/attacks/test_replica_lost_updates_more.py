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
import pytest
from sqlalchemy.sql.dml import UpdateBase

from bastion.core.models import CatalogItem, Discovery
from tests.attacks.test_replica_lost_updates import two_replicas
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

