"""The SQL AuditStore: chained audit records and their signed marks, written in batches."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from operator import attrgetter
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, insert, or_, select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.core.audit_chain import AuditEntry, SignedMark
from bastion.core.errors import RecordsRefused, ServiceUnavailable
from bastion.core.ports import AuditFilter
from bastion.store.sql.tables import audit_marks, audit_records

_FIELDS = [c.name for c in audit_records.columns]
_INSERTED = tuple(name for name in _FIELDS if name != "id")
_MARK_FIELDS = ("chain", "kind", "seq", "hash", "at", "key_id", "signature")

SignCheckpoint = Callable[[AuditEntry], SignedMark]


def _causes(exc: BaseException) -> list[BaseException]:
    """The error and what it wraps (SQLAlchemy's DBAPIError -> the driver's error -> its cause)."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found and len(found) < 8:
        found.append(current)
        current = getattr(current, "orig", None) if isinstance(current, DBAPIError) else current.__cause__
    return found


def _data_refused(exc: BaseException) -> bool:
    """Whether the database (or its driver) refused a value, not the connection: SQLSTATE class 22
    (data exception: too long, out of range, a character it cannot store), or the DB-API's DataError
    or a value the driver could not encode. A lost connection, a timeout or a lock is retried as
    it is; only this is set aside."""
    for cause in _causes(exc):
        sqlstate = getattr(cause, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith("22"):
            return True
        if type(cause).__name__ == "DataError" or isinstance(cause, UnicodeError | OverflowError):
            return True  # the driver could not send a value (sqlite3 raises these unwrapped)
    return False


def _reason(exc: BaseException) -> str:
    """The driver's error class, and its SQLSTATE when there is one (never the values)."""
    cause = _causes(exc)[-1]
    sqlstate = getattr(cause, "sqlstate", None)
    return f"{type(cause).__name__}, SQLSTATE {sqlstate}" if isinstance(sqlstate, str) else type(cause).__name__


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(**{k: getattr(row, k) for k in _FIELDS})


def _mark(row: Any) -> SignedMark:
    return SignedMark(**{k: getattr(row, k) for k in _MARK_FIELDS})


class _RecordInsert:
    """The INSERT of audit records, compiled once for the engine's dialect and run by the driver
    with one tuple (or dict) per record: SQLAlchemy's per-row parameter processing cost more than
    the rest of writing a record (every column is a plain string, integer or float)."""

    def __init__(self, dialect: Dialect) -> None:
        compiled = insert(audit_records).values({name: None for name in _INSERTED}).inline().compile(dialect=dialect)
        self.sql = str(compiled)
        self.positions = compiled.positiontup
        self._row = attrgetter(*self.positions) if self.positions is not None else None

    def parameters(self, entries: Sequence[AuditEntry]) -> list[Any]:
        if self._row is not None:
            return list(map(self._row, entries))  # one tuple per entry, made in C
        return [{name: getattr(e, name) for name in _INSERTED} for e in entries]


class SqlAuditStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._insert = _RecordInsert(engine.dialect)

    async def append(self, entries: Sequence[AuditEntry], marks: Sequence[SignedMark]) -> None:
        try:
            async with self.engine.begin() as conn:
                if entries:
                    await conn.exec_driver_sql(self._insert.sql, self._insert.parameters(entries))
                if marks:
                    await conn.execute(insert(audit_marks), [asdict(m) for m in marks])
        except (SQLAlchemyError, OSError, UnicodeError, OverflowError) as exc:
            if _data_refused(exc):
                raise RecordsRefused(f"the database refused an audit record ({_reason(exc)})") from None
            raise ServiceUnavailable(f"the audit log could not be written ({type(exc).__name__})") from None

    async def find(self, query: AuditFilter) -> list[AuditEntry]:
        t = audit_records.c
        stmt = select(audit_records)
        conditions: list[ColumnElement[bool]] = []
        if query.since is not None:
            conditions.append(t.at >= query.since)
        if query.until is not None:
            conditions.append(t.at < query.until)
        for column, value in (
            (t.action, query.action), (t.target, query.target), (t.outcome, query.outcome), (t.server, query.server)
        ):
            if value is not None:
                conditions.append(column == value)
        if query.actor is not None:
            conditions.append(or_(t.actor_user == query.actor, t.actor_token == query.actor, t.actor_client == query.actor))
        if query.before is not None:
            conditions.append(t.id < query.before)
        if query.after is not None:
            conditions.append(t.id > query.after)
        stmt = stmt.where(*conditions)
        order = t.id.asc() if query.after is not None else t.id.desc()
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt.order_by(order).limit(query.limit))).all()
        return [_entry(r) for r in rows]

    async def chains(self) -> list[str]:
        async with self.engine.connect() as conn:
            records = (await conn.execute(select(audit_records.c.chain).distinct())).scalars().all()
            marked = (await conn.execute(select(audit_marks.c.chain).distinct())).scalars().all()
        return sorted(set(records) | set(marked))

    async def entries(self, chain: str, after: tuple[int, int] | None = None, limit: int | None = None) -> list[AuditEntry]:
        t = audit_records.c
        stmt = select(audit_records).where(t.chain == chain)
        if after is not None:
            stmt = stmt.where(or_(t.seq > after[0], and_(t.seq == after[0], t.id > after[1])))
        stmt = stmt.order_by(t.seq, t.id)
        if limit is not None:
            stmt = stmt.limit(limit)
        async with self.engine.connect() as conn:
            return [_entry(r) for r in (await conn.execute(stmt)).all()]

    async def marks(self, chain: str) -> list[SignedMark]:
        stmt = select(audit_marks).where(audit_marks.c.chain == chain).order_by(audit_marks.c.id)
        async with self.engine.connect() as conn:
            return [_mark(r) for r in (await conn.execute(stmt)).all()]

    async def prune(self, before: str, sign: SignCheckpoint) -> int:
        """Delete records older than `before`, each chain's pruned prefix replaced by a signed checkpoint
        (in the same transaction, so the chain always verifies); returns how many records went."""
        t = audit_records.c
        removed = 0
        async with self.engine.begin() as conn:
            last = (
                await conn.execute(select(t.chain, func.max(t.seq)).where(t.at < before).group_by(t.chain))
            ).all()
            for chain, seq in last:
                row = (await conn.execute(select(audit_records).where(t.chain == chain, t.seq == seq))).one()
                mark = sign(_entry(row))
                result = await conn.execute(delete(audit_records).where(t.chain == chain, t.seq <= seq))
                removed += result.rowcount or 0
                m = audit_marks.c
                await conn.execute(delete(audit_marks).where(m.chain == chain, m.seq <= seq))
                await conn.execute(insert(audit_marks), [asdict(mark)])
        return removed
