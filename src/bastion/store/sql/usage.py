"""The SQL UsageStore: one row per (granularity, bucket, writer, item), owned by its writer."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update
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
        try:
            async with self.engine.begin() as conn:
                for row in rows:
                    key = row_key(row)
                    # Only this writer ever writes this row, so update-else-insert cannot race.
                    done = await conn.execute(update(usage_buckets).where(t.row_key == key).values(**_values(row)))
                    if not done.rowcount:
                        await conn.execute(
                            insert(usage_buckets).values(
                                row_key=key, granularity=row.granularity, start=row.start, writer=row.writer,
                                server=row.server, upstream=row.upstream, kind=row.kind, item=row.item, **_values(row),
                            )
                        )
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
