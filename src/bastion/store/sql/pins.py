"""Pin decisions in SQL: approved/rejected definitions per catalog item, and trust-next flags."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Text, and_, cast, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bastion.core.errors import NotFound, StaleWrite
from bastion.core.pinning import PinBook, PinRecord, definition_hash
from bastion.store.sql.decoded_rows import DecodedRows
from bastion.store.sql.tables import catalog_items, pin_records, upstreams


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
        await _save(conn, records, drop)


async def _save(conn: AsyncConnection, records: Sequence[PinRecord], drop: Sequence[PinRecord]) -> None:
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
        await conn.execute(delete(pin_records).where(_one(ids[record.upstream], record.kind, record.key)))
    for record in records:
        await conn.execute(
            insert(pin_records).values(upstream_id=ids[record.upstream], kind=record.kind, key=record.key, **_values(record))
        )


def _one(upstream_id: int, kind: str, key: str) -> Any:
    return and_(pin_records.c.upstream_id == upstream_id, pin_records.c.kind == kind, pin_records.c.key == key)


async def decide_pin(
    engine: AsyncEngine, decision: PinRecord, *, keep: bool, was: PinRecord | None, serving: str | None
) -> None:
    """Save an admin's decision on one item (`keep` False: forget its record, the item is gone), only if
    what it was made on is still stored: the item's record is still `was` (None: none) and its stored
    definition still hashes to `serving` (None: the upstream serves no such item); else StaleWrite."""
    what = f"{decision.kind.replace('_', ' ')} {decision.key!r} of upstream {decision.upstream!r}"
    async with engine.begin() as conn:
        upstream_id = (await conn.execute(select(upstreams.c.id).where(upstreams.c.name == decision.upstream))).scalar()
        # A write that changes nothing, first: it locks the upstream's row (SQLite: the database), so no
        # rediscovery or other decision lands between the checks below and the save.
        lock = update(upstreams).where(upstreams.c.id == upstream_id).values(pin_trust_next=upstreams.c.pin_trust_next)
        if upstream_id is None or (await conn.execute(lock)).rowcount == 0:
            raise NotFound(f"upstream {decision.upstream!r} does not exist")
        row = (await conn.execute(
            select(pin_records.c.approved_hash, pin_records.c.rejected_hash)
            .where(_one(upstream_id, decision.kind, decision.key))
        )).first()
        stored = None if row is None else tuple(row)
        if stored != (None if was is None else (was.approved_hash, was.rejected_hash)):
            raise StaleWrite(f"{what} was decided by another request meanwhile")
        definition = (await conn.execute(
            select(catalog_items.c.definition)
            .where(catalog_items.c.upstream_id == upstream_id, catalog_items.c.kind == decision.kind, catalog_items.c.key == decision.key)
        )).scalar()
        now = None if definition is None else definition_hash(decision.kind, definition)
        if now != serving:
            raise StaleWrite(f"{what} changed since this approval was listed")
        await _save(conn, [decision] if keep else [], [] if keep else [decision])


async def approve_trusted(engine: AsyncEngine, upstream: str, records: Sequence[PinRecord]) -> bool:
    """Approve `records` (a discovery) if the upstream still trusts its next discovery, and stop trusting
    it, in one transaction; False (nothing saved) if another discovery took that trust first."""
    async with engine.begin() as conn:
        take = update(upstreams).where(upstreams.c.name == upstream, upstreams.c.pin_trust_next.is_(True))
        if (await conn.execute(take.values(pin_trust_next=False))).rowcount == 0:
            return False
        await _save(conn, records, [])
        return True


async def set_pin_trust(engine: AsyncEngine, upstream: str, trust: bool) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(upstreams).where(upstreams.c.name == upstream).values(pin_trust_next=trust))
