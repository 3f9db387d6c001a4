"""The observe stage tells its observers of finished calls in batches: by size, after a delay, or
when a reader drains the batch; never a call lost, never one told twice, each with its own facts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from bastion.core.observation import CallRecord, EdgeEvent
from bastion.pipeline.context import CallContext
from bastion.pipeline.observe import CallBatch, observe_stage
from bastion.store.memory_audit import MemoryAuditStore
from bastion.telemetry.audit import AuditLog
from bastion.telemetry.audit_keys import AuditKeys

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the batch's timer is the asyncio loop's (Bastion serves on uvicorn's)


class Seen:
    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def call_finished(self, record: CallRecord) -> None:
        self.records.append(record)


async def _answer(ctx: CallContext) -> dict[str, object]:
    return {"content": [], "isError": ctx.params.get("fail") is True}


def _ctx(n: int, fail: bool = False) -> CallContext:
    return CallContext(server="vs", method="tools/list", params={"n": n, "fail": fail}, credential=None)


async def test_calls_wait_for_the_batch_size_then_are_told_in_order() -> None:
    seen = Seen()
    batch = CallBatch([seen], size=3, delay=60)
    observe = observe_stage(batch)
    await observe(_ctx(1), _answer)
    await observe(_ctx(2, fail=True), _answer)
    assert seen.records == []
    await observe(_ctx(3), _answer)
    assert [r.outcome for r in seen.records] == ["ok", "tool_error", "ok"]
    assert [r.params["n"] for r in seen.records if r.params] == [1, 2, 3]
    assert all(r.seconds >= 0 and r.request_id for r in seen.records)
    assert len({r.request_id for r in seen.records}) == 3


async def test_a_lone_call_is_told_after_the_delay_without_any_reader() -> None:
    seen = Seen()
    observe = observe_stage(CallBatch([seen], size=100, delay=0.05))
    await observe(_ctx(1), _answer)
    assert seen.records == []
    for _ in range(100):
        await asyncio.sleep(0.01)
        if seen.records:
            break
    assert len(seen.records) == 1
    await asyncio.sleep(0.1)  # the timer fired once: nothing told twice
    await observe(_ctx(2), _answer)
    for _ in range(100):  # a new batch arms a new timer
        await asyncio.sleep(0.01)
        if len(seen.records) == 2:
            break
    assert [r.params["n"] for r in seen.records if r.params] == [1, 2]


async def test_a_reader_drains_what_finished_and_a_failed_call_is_told_too() -> None:
    seen = Seen()
    batch = CallBatch([seen], size=100, delay=60)
    observe = observe_stage(batch)

    async def broken(ctx: CallContext) -> dict[str, object]:
        raise RuntimeError("boom")

    await observe(_ctx(1), _answer)
    with pytest.raises(RuntimeError):
        await observe(_ctx(2), broken)
    batch.drain()
    assert [(r.params["n"] if r.params else None, r.outcome, r.error) for r in seen.records] == [
        (1, "ok", None), (2, "error", "RuntimeError")
    ]
    batch.drain()
    assert len(seen.records) == 2


def test_without_a_running_loop_each_call_is_told_at_once() -> None:
    seen = Seen()
    batch = CallBatch([seen], size=100, delay=60)
    batch.add((_ctx(1), 0.0, 0.001, 0.0, "ok", None, None))
    assert len(seen.records) == 1


async def test_a_record_that_cannot_be_made_is_logged_and_the_rest_are_still_told(caplog: pytest.LogCaptureFixture) -> None:
    seen = Seen()
    batch = CallBatch([seen], size=100, delay=60)
    batch.add((_ctx(1), 0.0, 0.001, 0.0, "ok", None, None))
    batch.add((object(), 0.0, 0.001, 0.0, "ok", None, None))  # type: ignore[arg-type]  # not a context
    batch.add((_ctx(3), 0.0, 0.001, 0.0, "ok", None, None))
    batch.drain()
    assert [r.params["n"] for r in seen.records if r.params] == [1, 3]
    assert "could not be recorded" in caplog.text


async def test_an_admin_change_after_a_call_comes_after_it_in_the_audit_chain() -> None:
    audit = AuditLog(MemoryAuditStore(), AuditKeys(b"k" * 32), "r1")
    batch = CallBatch([audit], size=100, delay=60)
    audit.catch_up = batch.drain
    call = CallContext(server="vs", method="tools/call", params={"name": "x"}, credential=None)
    await observe_stage(batch)(call, _answer)
    audit.edge_event(EdgeEvent("change", time.time(), "PATCH /api/v1/servers/{name}", "vs", "ok", 200, 0.001))
    await audit.flush()
    assert [e.action for e in await audit.store.entries("r1")] == ["tools/call", "PATCH /api/v1/servers/{name}"]


class SeenAtOnce(Seen):
    def __init__(self) -> None:
        super().__init__()
        self.batches = 0

    def calls_finished(self, records: Sequence[CallRecord]) -> None:
        self.batches += 1
        self.records.extend(records)


class FailsOnSecond(Seen):
    def call_finished(self, record: CallRecord) -> None:
        if record.params and record.params["n"] == 2:
            raise RuntimeError("observer bug")
        super().call_finished(record)


async def test_an_observer_that_takes_batches_gets_each_batch_at_once(caplog: pytest.LogCaptureFixture) -> None:
    at_once, one_by_one, failing = SeenAtOnce(), Seen(), FailsOnSecond()
    batch = CallBatch([failing, at_once, one_by_one], size=3, delay=60)
    observe = observe_stage(batch)
    for n in (1, 2, 3):
        await observe(_ctx(n), _answer)
    assert at_once.batches == 1
    assert [r.request_id for r in at_once.records] == [r.request_id for r in one_by_one.records]
    assert [r.params["n"] for r in at_once.records if r.params] == [1, 2, 3]
    assert [r.params["n"] for r in failing.records if r.params] == [1, 3]  # its failure costs only that record
    assert "an observer failed" in caplog.text
