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

import httpx2
import pytest
from sqlalchemy import Table

from bastion.core.audit_chain import WIDTHS
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


def _event(target: str) -> EdgeEvent:
    return EdgeEvent(
        kind="change", started=time.time(), action="POST /api/v1/teams", target=target,
        outcome="ok", status=201, seconds=0.01, principal="token:admin", user="admin",
    )


async def test_a_record_the_database_refuses_for_a_reason_not_foreseen_is_set_aside_not_retried_forever() -> None:
    """Whatever else PostgreSQL may refuse in a record (here a column narrowed behind Bastion's back,
    so a long target is a real "value too long"): that record is stored as a note saying it could
    not be, the records around it are written, the chain verifies, and later flushes go on."""
    async with postgres_database() as url:
        engine = make_engine(url)
        try:
            await upgrade(engine)
            async with engine.begin() as conn:
                await conn.exec_driver_sql("ALTER TABLE audit_records ALTER COLUMN target TYPE varchar(10)")
            store = SqlAuditStore(engine)
            audit = AuditLog(store, AuditKeys(os.urandom(32)), "r1")
            for target in ("before", "x" * 50, "after"):
                audit.edge_event(_event(target))
            assert await audit.flush(sign=True) == 3
            audit.edge_event(_event("later"))
            assert await audit.flush(sign=True) == 1  # not blocked behind the refused record
            written = sorted(await store.find(AuditFilter()), key=lambda e: e.seq)
            assert [e.target for e in written] == ["before", "", "after", "later"]
            unstorable = written[1]
            assert unstorable.action == "POST /api/v1/teams" and unstorable.outcome == "ok"
            assert unstorable.detail is not None and "could not be stored" in unstorable.detail
            assert "x" * 11 not in unstorable.detail and "StringDataRightTruncation" in unstorable.detail
            verdict = await audit.verify()
            assert verdict.ok and verdict.records == 4 and verdict.unsigned_tail == 0, verdict
        finally:
            await engine.dispose()


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
