"""Pin decisions in SQL: approved/rejected definitions per catalog item, and trust-next flags."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Text, and_, cast, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.core.errors import NotFound
from bastion.core.pinning import PinBook, PinRecord
from bastion.store.sql.decoded_rows import DecodedRows
from bastion.store.sql.tables import pin_records, upstreams


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


_PIN_COLUMNS = (
    upstreams.c.name, pin_records.c.kind, pin_records.c.key, cast(pin_records.c.approved, Text),
    pin_records.c.approved_hash, pin_records.c.rejected_hash, pin_records.c.decided_by, pin_records.c.decided_at,
)
"""A pin record's row as `_record` reads it: the approved definition as its stored JSON text."""


def _record(row: tuple[Any, ...]) -> PinRecord:
    upstream, kind, key, approved, approved_hash, rejected_hash, decided_by, decided_at = row
    return PinRecord(
        upstream=upstream, kind=kind, key=key, approved=None if approved is None else json.loads(approved),
        approved_hash=approved_hash, rejected_hash=rejected_hash, decided_by=decided_by, decided_at=_aware(decided_at),
    )


def pin_rows() -> DecodedRows[PinRecord]:
    """What `list_pins` keeps between reads (one per repository)."""
    return DecodedRows(_record)


async def list_pins(engine: AsyncEngine, decoded: DecodedRows[PinRecord]) -> PinBook:
    query = select(*_PIN_COLUMNS).join(upstreams).order_by(upstreams.c.name, pin_records.c.kind, pin_records.c.key)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
        trusting = (await conn.execute(select(upstreams.c.name).where(upstreams.c.pin_trust_next.is_(True)))).scalars().all()
    return PinBook(records=tuple(await decoded.values(rows)), trusting=frozenset(trusting))


def _values(record: PinRecord) -> dict[str, Any]:
    return {
        "approved": record.approved,
        "approved_hash": record.approved_hash,
        "rejected_hash": record.rejected_hash,
        "decided_by": record.decided_by,
        "decided_at": record.decided_at,
    }


async def save_pins(engine: AsyncEngine, records: Sequence[PinRecord], *, drop: Sequence[PinRecord] = ()) -> None:
    """Upsert `records` and delete `drop` (matched by upstream, kind and key), in one transaction."""
    async with engine.begin() as conn:
        names = {r.upstream for r in (*records, *drop)}
        # Their upstreams' rows locked first, in one order (PostgreSQL; SQLite's first write takes the write
        # lock): two saves of the same pins at once take turns instead of both inserting after both deleted.
        query = select(upstreams.c.name, upstreams.c.id).where(upstreams.c.name.in_(names)).order_by(upstreams.c.name)
        found = await conn.execute(query.with_for_update())
        ids: dict[str, int] = {name: int(i) for name, i in found.tuples()}
        for record in (*records, *drop):
            if record.upstream not in ids:
                raise NotFound(f"upstream {record.upstream!r} does not exist")
        for record in (*records, *drop):
            where = and_(
                pin_records.c.upstream_id == ids[record.upstream],
                pin_records.c.kind == record.kind,
                pin_records.c.key == record.key,
            )
            await conn.execute(delete(pin_records).where(where))
        for record in records:
            await conn.execute(
                insert(pin_records).values(
                    upstream_id=ids[record.upstream], kind=record.kind, key=record.key, **_values(record)
                )
            )


async def set_pin_trust(engine: AsyncEngine, upstream: str, trust: bool) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(upstreams).where(upstreams.c.name == upstream).values(pin_trust_next=trust))
