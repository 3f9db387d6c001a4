"""MCP Registry sources and their cached listings in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.core.errors import BastionError, Conflict, NotFound, StaleWrite
from bastion.core.registry_listing import RegistryEntry, RegistrySource
from bastion.store.sql.tables import registry_entries, registry_sources


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _entry(row: Any) -> RegistryEntry:
    return RegistryEntry(
        source=row.source, name=row.name, version=row.version, latest=row.latest, document=row.document,
        updated_at=row.updated_at, status=row.status,
    )


def _still(name: str, was: RegistrySource) -> Any:
    """The source row named `name`, if it still reads from where `was` does."""
    return and_(
        registry_sources.c.name == name,
        registry_sources.c.url.is_not_distinct_from(was.url),
        registry_sources.c.path.is_not_distinct_from(was.path),
    )


async def _gone_or_stale(conn: Any, name: str) -> BastionError:
    found = (await conn.execute(select(registry_sources.c.name).where(registry_sources.c.name == name))).first()
    if found is None:
        return NotFound(f"registry source {name!r} does not exist")
    return StaleWrite(f"registry source {name!r} was changed by another request meanwhile")


class SqlRegistryRepo:
    """Registry sources and the entries last fetched from each (replaced whole on every refresh)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def list_sources(self) -> list[RegistrySource]:
        counts = (
            select(registry_entries.c.source, func.count().label("n")).group_by(registry_entries.c.source).subquery()
        )
        query = select(registry_sources, counts.c.n).outerjoin(counts, counts.c.source == registry_sources.c.name)
        async with self.engine.connect() as conn:
            rows = await conn.execute(query.order_by(registry_sources.c.name))
            return [
                RegistrySource(
                    name=r.name, url=r.url, path=r.path, refreshed_at=_aware(r.refreshed_at), error=r.error,
                    entries=r.n or 0,
                )
                for r in rows
            ]

    async def get_source(self, name: str) -> RegistrySource | None:
        return next((s for s in await self.list_sources() if s.name == name), None)

    async def create_source(self, source: RegistrySource, entries: Sequence[RegistryEntry]) -> None:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    insert(registry_sources).values(
                        name=source.name, url=source.url, path=source.path, refreshed_at=source.refreshed_at,
                        error=None, created_at=datetime.now(UTC),
                    )
                )
                await self._insert(conn, entries)
        except IntegrityError:
            raise Conflict(f"registry source {source.name!r} already exists") from None

    async def save_listing(
        self, name: str, entries: Sequence[RegistryEntry] | None, at: datetime, error: str | None = None
    ) -> None:
        """Replace the source's entries (None keeps them: the refresh failed and says why in `error`)."""
        async with self.engine.begin() as conn:
            values: dict[str, Any] = {"error": error}
            if entries is not None:
                values["refreshed_at"] = at
            # The source row first: it locks the source (PostgreSQL; SQLite's first write takes the write
            # lock), so a refresh at the same time waits instead of inserting the same entries, and a
            # deletion that came first is this refresh's 404 rather than a foreign key failure.
            result = await conn.execute(update(registry_sources).where(registry_sources.c.name == name).values(**values))
            if result.rowcount == 0:
                raise NotFound(f"registry source {name!r} does not exist")
            if entries is not None:
                await conn.execute(delete(registry_entries).where(registry_entries.c.source == name))
                await self._insert(conn, entries)

    async def _insert(self, conn: Any, entries: Sequence[RegistryEntry]) -> None:
        if entries:
            await conn.execute(insert(registry_entries), [e.model_dump() for e in entries])

    async def update_source(self, source: RegistrySource, entries: Sequence[RegistryEntry], *, was: RegistrySource) -> None:
        """Point the source elsewhere with the listing read from there, in one transaction: only if its URL
        and path are still `was`'s (else StaleWrite), so of two edits made on the same read one is refused.
        A refresh saves through here too (the same URL or path): not over an edit saved since its read."""
        async with self.engine.begin() as conn:
            values = {"url": source.url, "path": source.path, "refreshed_at": source.refreshed_at, "error": None}
            result = await conn.execute(update(registry_sources).where(_still(source.name, was)).values(**values))
            if result.rowcount == 0:
                raise await _gone_or_stale(conn, source.name)
            await conn.execute(delete(registry_entries).where(registry_entries.c.source == source.name))
            await self._insert(conn, entries)

    async def delete_source(self, name: str, *, was: RegistrySource | None = None) -> None:
        async with self.engine.begin() as conn:
            if was is not None:
                # A write that changes nothing, as the check: the row is locked before anything is deleted.
                still = update(registry_sources).where(_still(name, was)).values(url=registry_sources.c.url)
                if (await conn.execute(still)).rowcount == 0:
                    raise await _gone_or_stale(conn, name)
            # Locked first, as a refresh does, so the two take turns instead of deadlocking (PostgreSQL).
            await conn.execute(select(registry_sources.c.name).where(registry_sources.c.name == name).with_for_update())
            await conn.execute(delete(registry_entries).where(registry_entries.c.source == name))
            result = await conn.execute(delete(registry_sources).where(registry_sources.c.name == name))
            if result.rowcount == 0:
                raise NotFound(f"registry source {name!r} does not exist")

    async def list_entries(self, source: str | None = None) -> list[RegistryEntry]:
        query = select(registry_entries)
        if source is not None:
            query = query.where(registry_entries.c.source == source)
        async with self.engine.connect() as conn:
            rows = await conn.execute(query.order_by(registry_entries.c.source, registry_entries.c.name))
            return [_entry(r) for r in rows]
