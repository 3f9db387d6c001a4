"""The SQL UsageStore: one row per (granularity, bucket, writer, item), owned by its writer."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.core.errors import ServiceUnavailable
from bastion.core.usage import UsageQuery, UsageRow
from bastion.store.sql.tables import usage_buckets


def row_key(row: UsageRow) -> str:
    parts = (row.granularity, row.start, row.writer, row.server, row.upstream, row.kind, row.item)
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _values(row: UsageRow) -> dict[str, Any]:
    return {
        "calls": row.calls,
        "errors": row.errors,
        "latency": list(row.latency),
        "callers": sorted(row.callers),
        "last_used": row.last_used,
    }


def _row(r: Any) -> UsageRow:
    return UsageRow(
        r.granularity, r.start, r.writer, r.server, r.upstream, r.kind, r.item,
        r.calls, r.errors, list(r.latency), set(r.callers), r.last_used,
    )


class SqlUsageStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def save(self, rows: Sequence[UsageRow]) -> None:
        t = usage_buckets.c
        keyed = {row_key(row): row for row in rows}
        try:
            async with self.engine.begin() as conn:
                # Only this writer ever writes these rows, so read-then-write cannot race; three
                # statements per batch (which exist, update those, insert the rest).
                found = (await conn.execute(select(t.row_key).where(t.row_key.in_(list(keyed))))).scalars().all()
                existing = set(found)
                updates = [{"k": k, **_values(r)} for k, r in keyed.items() if k in existing]
                inserts = [
                    {"row_key": k, "granularity": r.granularity, "start": r.start, "writer": r.writer,
                     "server": r.server, "upstream": r.upstream, "kind": r.kind, "item": r.item, **_values(r)}
                    for k, r in keyed.items()
                    if k not in existing
                ]
                if updates:
                    stmt = update(usage_buckets).where(t.row_key == bindparam("k")).values(
                        {name: bindparam(name) for name in ("calls", "errors", "latency", "callers", "last_used")}
                    )
                    await conn.execute(stmt, updates)
                if inserts:
                    await conn.execute(insert(usage_buckets), inserts)
        except (SQLAlchemyError, OSError) as exc:
            raise ServiceUnavailable(f"usage could not be written ({type(exc).__name__})") from None

    async def query(self, query: UsageQuery) -> list[UsageRow]:
        t = usage_buckets.c
        stmt = select(usage_buckets).where(
            t.granularity == query.granularity, t.start >= query.since, t.start < query.until
        )
        for column, value in ((t.server, query.server), (t.upstream, query.upstream), (t.item, query.item)):
            if value is not None:
                stmt = stmt.where(column == value)
        async with self.engine.connect() as conn:
            return [_row(r) for r in (await conn.execute(stmt)).all()]

    async def used_since(self, since: str) -> set[tuple[str, str]]:
        t = usage_buckets.c
        stmt = select(t.upstream, t.item).where(t.granularity == "day", t.last_used >= since).distinct()
        async with self.engine.connect() as conn:
            return {(u, i) for u, i in (await conn.execute(stmt)).all()}

    async def prune(self, granularity: str, before: str) -> int:
        t = usage_buckets.c
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(usage_buckets).where(t.granularity == granularity, t.start < before))
        return result.rowcount or 0
