"""The SQL AgentTaskHolders: which caller started each A2A task and conversation, in the database
every replica shares. Ids and callers are stored as SHA-256 hashes (only equality is ever asked),
so a row names no task id that would reach an agent and no caller; rows past their time are
deleted as new ones are written."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, ColumnElement, DateTime, String, Table, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.store.sql.tables import metadata

agent_task_holders = Table(
    "agent_task_holders",
    metadata,
    Column("upstream", String(63), primary_key=True),
    Column("kind", String(16), primary_key=True),  # "task" or "context"
    Column("ident_hash", String(64), primary_key=True),
    Column("holder_hash", String(64), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)
_t = agent_task_holders


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SqlAgentTaskHolders:
    def __init__(self, engine: AsyncEngine, now: Callable[[], datetime] = _utc_now) -> None:
        self.engine = engine
        self._now = now

    @staticmethod
    def _row(upstream: str, kind: str, ident: str) -> ColumnElement[bool]:
        return and_(_t.c.upstream == upstream, _t.c.kind == kind, _t.c.ident_hash == _hash(ident))

    async def holds(self, upstream: str, kind: str, ident: str, holder: str) -> bool:
        query = select(_t.c.holder_hash).where(self._row(upstream, kind, ident), _t.c.expires_at > self._now())
        async with self.engine.connect() as conn:
            held = (await conn.execute(query)).scalar_one_or_none()
        return held == _hash(holder)

    async def claim(self, upstream: str, kind: str, ident: str, holder: str, ttl: float) -> bool:
        now = self._now()
        until = now + timedelta(seconds=ttl)
        mine = and_(self._row(upstream, kind, ident), _t.c.holder_hash == _hash(holder), _t.c.expires_at > now)
        async with self.engine.begin() as conn:
            if (await conn.execute(update(_t).where(mine).values(expires_at=until))).rowcount:
                return True  # already the holder's: held for longer
        try:
            async with self.engine.begin() as conn:
                # A lapsed hold is nobody's (this one's included), and rows must not pile up.
                await conn.execute(delete(_t).where(_t.c.expires_at <= now))
                row = {"upstream": upstream, "kind": kind, "ident_hash": _hash(ident), "holder_hash": _hash(holder)}
                await conn.execute(insert(_t).values(**row, expires_at=until))
        except IntegrityError:
            # Held by another caller, or claimed by this one meanwhile (a concurrent call): ask.
            return await self.holds(upstream, kind, ident, holder)
        return True
