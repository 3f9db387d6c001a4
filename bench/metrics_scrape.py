"""Benchmark: how long a /metrics scrape takes with a catalog of 10,000 tools that were all called,
and what recording one call costs the hot path (metrics, audit and usage observers), in CPU time.

    python bench/metrics_scrape.py [--tools 10000] [--scrapes 20]
"""

from __future__ import annotations

import argparse
import os
import time

from bastion.core.observation import CallRecord
from bastion.store.memory_audit import MemoryAuditStore, MemoryUsageStore
from bastion.telemetry.audit import AuditLog
from bastion.telemetry.audit_keys import AuditKeys
from bastion.telemetry.metrics import Metrics, StateFigures
from bastion.telemetry.usage import UsageRecorder


def record(n: int, tools: int) -> CallRecord:
    return CallRecord(
        request_id="r", started=time.time(), server=f"vs{n % 10}", method="tools/call", outcome="ok",
        seconds=0.004, upstream_seconds=0.003, upstream=f"up{n % 50}", item=f"up{n % 50}__tool{n % tools}", kind="tool",
        principal="token:abc", user="u1", token="abc", params={"name": "x", "arguments": {"text": "hello"}},
        result={"content": [{"type": "text", "text": "hello"}]},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=20)
    args = parser.parse_args()
    metrics = Metrics()
    state = StateFigures(
        upstream_up={f"up{i}": True for i in range(50)},
        catalog_items={"tool": args.tools, "prompt": 100, "resource": 100},
        virtual_servers=10,
        sessions={f"vs{i}": 5 for i in range(10)},
    )
    metrics.watch_state(lambda: state)
    records = [record(n, args.tools) for n in range(args.tools)]
    start = time.process_time()
    for r in records:
        metrics.call_finished(r)
    first = (time.process_time() - start) / len(records)
    start = time.process_time()
    for r in records:
        metrics.call_finished(r)
    steady = (time.process_time() - start) / len(records)

    audit = AuditLog(MemoryAuditStore(), AuditKeys(os.urandom(32)), "bench", max_queue=10**7)
    usage = UsageRecorder(MemoryUsageStore(), "bench", AuditKeys(os.urandom(32)).digest)
    start = time.process_time()
    for r in records:
        audit.call_finished(r)
        usage.call_finished(r)
    recorded = (time.process_time() - start) / len(records)

    sizes = []
    start = time.process_time()
    for _ in range(args.scrapes):
        sizes.append(len(metrics.expose("")[0]))
    scrape = (time.process_time() - start) / args.scrapes
    print(f"tools called: {args.tools}  body: {sizes[-1] / 1024:.0f} KiB")
    print(f"scrape (text format): {scrape * 1e3:.1f} ms")
    print(f"metrics per call: {first * 1e6:.1f} us first time for a label set, {steady * 1e6:.1f} us after")
    print(f"audit + usage recording per call (hot path, no I/O): {recorded * 1e6:.1f} us")


if __name__ == "__main__":
    main()
