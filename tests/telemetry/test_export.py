"""The SIEM export: JSON lines to a file or an HTTP endpoint, retried, with a bounded queue whose
overflow is counted and audited."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.core.observation import EdgeEvent
from bastion.store.memory_audit import MemoryAuditStore
from bastion.telemetry.audit import AuditLog
from bastion.telemetry.audit_keys import AuditKeys
from bastion.telemetry.export import AuditExport
from tests.harness import serve_asgi

pytestmark = pytest.mark.anyio


def _change(n: int) -> EdgeEvent:
    return EdgeEvent("change", 1_800_000_000.0 + n, "POST /api/v1/servers", f"vs{n}", "ok", 201, 0.01, principal="admin")


async def test_stored_records_are_appended_to_a_file_as_json_lines(tmp_path: Path) -> None:
    log = AuditLog(MemoryAuditStore(), AuditKeys(os.urandom(32)), "r")
    export = AuditExport(file=tmp_path / "audit.jsonl")
    log.listeners.append(export.offer)
    for n in range(3):
        log.edge_event(_change(n))
    await log.flush()
    await export.drain()
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [r["target"] for r in records] == ["vs0", "vs1", "vs2"] and records[0]["hash"]


async def test_a_failing_endpoint_is_retried_and_a_full_queue_is_counted_and_audited() -> None:
    received: list[bytes] = []
    answers = [503]

    async def ingest(request: Request) -> Response:
        body = await request.body()
        status = answers.pop(0) if answers else 200
        if status == 200:
            received.append(body)
        return Response(status_code=status)

    store = MemoryAuditStore()
    log = AuditLog(store, AuditKeys(os.urandom(32)), "r")
    dropped: list[int] = []
    async with serve_asgi(Starlette(routes=[Route("/ingest", ingest, methods=["POST"])])) as url:
        def overflowed(count: int) -> None:
            log.edge_event(EdgeEvent("export", 1.0, "audit.export_overflow", "siem", "error", 0, 0.0, detail=str(count)))

        export = AuditExport(url=f"{url}/ingest", token="siem-token", max_queue=10, batch=4,
                             on_dropped=dropped.append, on_overflow=overflowed)
        log.listeners.append(export.offer)
        for n in range(15):
            log.edge_event(_change(n))
        await log.flush()
        assert dropped == [5]
        async with httpx2.AsyncClient() as http:
            with pytest.raises(OSError):
                await export.drain(http)  # 503: nothing is lost, the batch stays queued
            await export.drain(http)
        assert [json.loads(line)["target"] for body in received for line in body.splitlines()] == [f"vs{n}" for n in range(10)]
        await log.flush()
        assert store.records[-1].action == "audit.export_overflow" and store.records[-1].detail == "5"
