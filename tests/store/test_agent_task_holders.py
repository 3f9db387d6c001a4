"""Which caller holds each A2A task and conversation: the in-memory store and the SQL one (SQLite and
PostgreSQL) keep one contract. A hold is its caller's alone, lasts its time after the last use and
then is nobody's (its row deleted, not kept forever); ids and callers are stored hashed; of callers
claiming one id at once exactly one gets it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.store.memory_agent_tasks import MemoryAgentTaskHolders
from bastion.store.sql.agent_tasks import SqlAgentTaskHolders, agent_task_holders

pytestmark = pytest.mark.anyio
AgentTaskHolders = MemoryAgentTaskHolders | SqlAgentTaskHolders
START = datetime(2026, 12, 1, tzinfo=UTC)
TASK = "6b1e4a2c-0f57-4c1e-9d8e-3a2b1c0d9e8f"


class Clock:
    def __init__(self) -> None:
        self.at = START

    def now(self) -> datetime:
        return self.at

    def seconds(self) -> float:
        return self.at.timestamp()


@pytest.fixture
def store(store_engine: AsyncEngine | None) -> tuple[AgentTaskHolders, Clock, object]:
    clock = Clock()
    if store_engine is None:
        return MemoryAgentTaskHolders(clock.seconds), clock, None
    return SqlAgentTaskHolders(store_engine, clock.now), clock, store_engine


async def rows(engine: object) -> list[tuple[str, str, str, str]]:
    async with engine.connect() as conn:  # type: ignore[attr-defined]
        found = await conn.execute(
            select(agent_task_holders.c.upstream, agent_task_holders.c.kind, agent_task_holders.c.ident_hash,
                   agent_task_holders.c.holder_hash)
        )
        return [tuple(r) for r in found]


async def test_a_hold_is_its_callers_alone_until_it_lapses(store: tuple[AgentTaskHolders, Clock, object]) -> None:
    holders, clock, engine = store
    assert not await holders.holds("agent", "task", TASK, "user:alice")  # nobody's yet
    assert await holders.claim("agent", "task", TASK, "user:alice", 60)
    assert await holders.holds("agent", "task", TASK, "user:alice")
    assert not await holders.holds("agent", "task", TASK, "user:bob")
    assert not await holders.claim("agent", "task", TASK, "user:bob", 60)
    # The same id as a context, or at another upstream, is another thing (and nobody's).
    assert not await holders.holds("agent", "context", TASK, "user:alice")
    assert not await holders.holds("other", "task", TASK, "user:alice")
    if engine is not None:  # stored hashed: no task id that reaches an agent, no caller
        stored = await rows(engine)
        assert len(stored) == 1 and not any(TASK in v or "alice" in v for v in stored[0])

    # Each use holds it longer; unused past its time it is nobody's, and then anyone's to start.
    clock.at += timedelta(seconds=50)
    assert await holders.claim("agent", "task", TASK, "user:alice", 60)
    clock.at += timedelta(seconds=50)
    assert await holders.holds("agent", "task", TASK, "user:alice")
    clock.at += timedelta(seconds=11)
    assert not await holders.holds("agent", "task", TASK, "user:alice")
    assert await holders.claim("agent", "task", TASK, "user:bob", 60)
    assert not await holders.holds("agent", "task", TASK, "user:alice")


async def test_lapsed_holds_are_deleted_as_new_ones_come(store: tuple[AgentTaskHolders, Clock, object]) -> None:
    holders, clock, engine = store
    for n in range(5):
        assert await holders.claim("agent", "task", f"task-{n}", "user:alice", 60)
    clock.at += timedelta(seconds=61)
    assert await holders.claim("agent", "context", "fresh", "user:alice", 60)
    if engine is not None:
        async with engine.connect() as conn:  # type: ignore[attr-defined]
            count = (await conn.execute(select(func.count()).select_from(agent_task_holders))).scalar()
        assert count == 1
    else:
        assert len(holders._held) == 1  # type: ignore[attr-defined]


async def test_of_callers_claiming_one_id_at_once_exactly_one_holds_it(
    store: tuple[AgentTaskHolders, Clock, object],
) -> None:
    holders, _, _ = store
    won: dict[str, bool] = {}

    async def claim(caller: str) -> None:
        won[caller] = await holders.claim("agent", "context", "contested", caller, 60)

    callers = [f"user:{n}" for n in range(8)]
    async with anyio.create_task_group() as tg:
        for caller in callers:
            tg.start_soon(claim, caller)
    winners = [c for c in callers if won[c]]
    assert len(winners) == 1
    assert [c for c in callers if await holders.holds("agent", "context", "contested", c)] == winners
