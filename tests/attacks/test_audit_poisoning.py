"""Attack class: an audit record a caller can shape so that the database refuses it. The writer
keeps a refused batch and sends it again first at every flush, so on PostgreSQL one such record
stopped the audit log of that replica for good (and its batch grew in memory):
- a request refused at the door with a path longer than ~197 characters: its action
  (`GET /api/v1/aaa...`) overflowed the 200-character column;
- an OpenID Connect user, named by its email claim, longer than 36 characters (the user column),
  or a subject longer than 200 (the principal column, `oidc:<sub>`);
- a NUL in any text of a record (PostgreSQL cannot store one).
Now the columns fit what identity providers make (migration 0014), and a record's text is cut to
its column and a NUL replaced before the record is hashed, so the chain still verifies. And a
record refused for any other reason is set aside (written as a note that it could not be stored),
not retried at every flush."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import Table

from bastion.core.audit_chain import WIDTHS, AuditEntry
from bastion.core.observation import EdgeEvent
from bastion.core.ports import AuditFilter
from bastion.store.sql.audit import SqlAuditStore
from bastion.store.sql.migrate import upgrade
from bastion.store.sql.repo import make_engine
from bastion.store.sql.tables import audit_records
from bastion.telemetry.audit import AuditLog
from bastion.telemetry.audit_keys import AuditKeys
from tests.harness import Running, postgres_database, serve, settings_for

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def gateway() -> AsyncIterator[Running]:
    async with postgres_database() as url, serve(settings_for(url)) as running:
        yield running


async def test_a_long_refused_path_does_not_stop_the_audit_log_on_postgres(gateway: Running) -> None:
    long_path = "/api/v1/" + "a" * 300
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        assert (await http.get(long_path)).status_code == 401
    assert (await gateway.api.post("/api/v1/teams", json={"name": "after-the-long-path"})).status_code == 201
    records = (await gateway.api.get("/api/v1/audit", params={"limit": "100"})).json()["items"]
    refused = [r for r in records if r["target"].startswith(long_path[:100])]
    assert refused and len(refused[0]["action"]) == WIDTHS["action"]
    assert any(r["action"] == "POST /api/v1/teams" for r in records)  # written after it
    verdict = (await gateway.api.post("/api/v1/audit/verify")).json()
    assert verdict["ok"] is True, verdict


async def test_long_identities_and_a_nul_are_written_and_verify_on_postgres() -> None:
    async with postgres_database() as url:
        engine = make_engine(url)
        try:
            await upgrade(engine)
            store = SqlAuditStore(engine)
            audit = AuditLog(store, AuditKeys(os.urandom(32)), "r1")
            email = "firstname.middlename.lastname@a-long-company-name.example.com"  # 61 characters
            for user, principal in ((email, f"oidc:{'s' * 255}"), ("a\x00b", "oidc:c\x00d")):
                audit.edge_event(EdgeEvent(
                    kind="sign_in", started=time.time(), action="POST /api/v1/auth/login", target=user,
                    outcome="ok", status=200, seconds=0.01, principal=principal, user=user, detail="d\x00",
                ))
            assert await audit.flush(sign=True) == 2
            written = [(e.actor_user, e.actor_client, e.target, e.detail) for e in await store.find(AuditFilter())]
            assert (email, f"oidc:{'s' * 255}", email, "d\ufffd") in written
            assert ("a\ufffdb", "oidc:c\ufffdd", "a\ufffdb", "d\ufffd") in written
            verdict = await audit.verify()
            assert verdict.ok, verdict
        finally:
            await engine.dispose()


def test_the_widths_are_the_columns() -> None:
    table: Table = audit_records
    assert {name: table.c[name].type.length for name in WIDTHS} == WIDTHS  # type: ignore[attr-defined]


def _event(target: str, action: str = "POST /api/v1/teams") -> EdgeEvent:
    return EdgeEvent(
        kind="change", started=time.time(), action=action, target=target,
        outcome="ok", status=201, seconds=0.01, principal="token:admin", user="admin",
    )


class CountingStore(SqlAuditStore):
    """The real store, counting its transactions."""

    appends = 0

    async def append(self, entries: Any, marks: Any) -> None:
        self.appends += 1
        await super().append(entries, marks)


@asynccontextmanager
async def narrowed(*alterations: str) -> AsyncIterator[tuple[CountingStore, AuditLog]]:
    """An audit log on PostgreSQL whose tables were altered behind Bastion's back, so a value it
    writes is refused for real (a kind of refusal `fitted` does not foresee)."""
    async with postgres_database() as url:
        engine = make_engine(url)
        try:
            await upgrade(engine)
            async with engine.begin() as conn:
                for alteration in alterations:
                    await conn.exec_driver_sql(alteration)
            store = CountingStore(engine)
            yield store, AuditLog(store, AuditKeys(os.urandom(32)), "r1")
        finally:
            await engine.dispose()


async def _stored(store: SqlAuditStore) -> list[AuditEntry]:
    return sorted(await store.find(AuditFilter(limit=10_000)), key=lambda e: e.seq)


def _unstorable(entry: AuditEntry) -> bool:
    detail = entry.detail or ""
    return entry.action == "audit.unstorable" and "could not be stored" in detail


@pytest.mark.parametrize(
    ("alteration", "refused"),
    [
        ("ALTER TABLE audit_records ALTER COLUMN target TYPE varchar(10)", {"target": "x" * 50}),
        # The refused value is in a field the replacement also has: it must not keep it.
        ("ALTER TABLE audit_records ALTER COLUMN action TYPE varchar(17)", {"action": "POST /api/v1/teams/x"}),
    ],
    ids=["target", "action"],
)
async def test_a_record_the_database_refuses_for_a_reason_not_foreseen_is_set_aside_not_retried_forever(
    alteration: str, refused: dict[str, str]
) -> None:
    """That record is stored as a note of Bastion's own saying it could not be, the records around
    it are written, the chain verifies, and later flushes go on."""
    async with narrowed(alteration) as (store, audit):
        audit.edge_event(_event("before", action="POST /teams"))
        audit.edge_event(_event(refused.get("target", "t"), action=refused.get("action", "POST /teams")))
        audit.edge_event(_event("after", action="POST /teams"))
        assert await audit.flush(sign=True) == 3
        audit.edge_event(_event("later", action="POST /teams"))
        assert await audit.flush(sign=True) == 1  # not blocked behind the refused record
        written = await _stored(store)
        assert [e.target for e in written] == ["before", "", "after", "later"]
        assert _unstorable(written[1]) and not any(_unstorable(e) for e in written[::2])
        assert "x" * 11 not in (written[1].detail or "") and "StringDataRightTruncation" in (written[1].detail or "")
        verdict = await audit.verify()
        assert verdict.ok and verdict.records == 4 and verdict.unsigned_tail == 0, verdict


async def test_a_refused_record_in_a_large_batch_costs_a_few_transactions_not_one_per_record() -> None:
    async with narrowed("ALTER TABLE audit_records ALTER COLUMN target TYPE varchar(10)") as (store, audit):
        for n in range(2000):
            audit.edge_event(_event("x" * 50 if n in (700, 1500) else f"t{n}"))
        assert await audit.flush(sign=True) == 2000
        assert store.appends < 60, store.appends  # bisected: about 2 log2(2000) per refused record
        written = await _stored(store)
        assert [e.seq for e in written if _unstorable(e)] == [701, 1501]
        assert (await audit.verify()).ok


async def test_a_head_mark_the_database_refuses_does_not_stop_the_writer() -> None:
    async with narrowed("ALTER TABLE audit_marks ALTER COLUMN signature TYPE varchar(10)") as (store, audit):
        audit.edge_event(_event("first"))
        assert await audit.flush(sign=True) == 1  # the record is written, the head left unsigned
        assert await audit.flush(sign=True) == 0  # only the mark: refused again, and nothing raised
        audit.edge_event(_event("second"))
        assert await audit.flush(sign=True) == 1
        assert [e.target for e in await _stored(store)] == ["first", "second"]
        verdict = await audit.verify()
        assert verdict.ok and verdict.unsigned_tail == 2, verdict


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_a_lone_surrogate_in_a_record_is_written_not_lost_with_its_batch(database: str, tmp_path: Path) -> None:
    """`fitted` replaced a NUL but not a lone surrogate, which the hash cannot encode: sealing raised
    after the batch was taken, so the batch was lost and the writer task died."""
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(postgres_database()) if database == "postgres" else f"sqlite+aiosqlite:///{tmp_path}/a.db"
        engine = make_engine(url)
        stack.push_async_callback(engine.dispose)
        await upgrade(engine)
        store = SqlAuditStore(engine)
        audit = AuditLog(store, AuditKeys(os.urandom(32)), "r1")
        audit.edge_event(_event("a\ud800b"))
        audit.edge_event(_event("next"))
        assert await audit.flush(sign=True) == 2
        assert [e.target for e in await _stored(store)] == ["a\ufffdb", "next"]
        assert (await audit.verify()).ok


async def test_a_database_that_does_not_answer_keeps_the_records_whole_for_a_later_flush() -> None:
    """Only a refused value is set aside: records that could not be written because the database
    was unreachable are written whole, in order, once it answers."""
    async with postgres_database() as url:
        engine, unreachable = make_engine(url), make_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")
        try:
            await upgrade(engine)
            audit = AuditLog(SqlAuditStore(unreachable), AuditKeys(os.urandom(32)), "r1")
            audit.edge_event(_event("first"))
            assert await audit.flush(sign=True) == 0
            audit.store = store = SqlAuditStore(engine)  # the database answers again
            audit.edge_event(_event("second"))
            assert await audit.flush(sign=True) == 2
            written = sorted(await store.find(AuditFilter()), key=lambda e: e.seq)
            assert [(e.target, e.detail) for e in written] == [("first", None), ("second", None)]
            assert (await audit.verify()).ok
        finally:
            await engine.dispose()
            await unreachable.dispose()
