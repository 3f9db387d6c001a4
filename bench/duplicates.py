"""Duplicate detection on a generated 10,000-tool catalog: the whole analysis, and a new upstream's tools
against the rest (incremental). Prints timings and what was found; never fails on a number.

    .venv/bin/python bench/duplicates.py [--upstreams 10] [--tools 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalog_gen import catalog
from loop_stall import stalled

from bastion.control.duplicates import Duplicates
from bastion.core.duplicates import DuplicateIndex, duplicates_of, find_duplicates
from bastion.core.snapshot import Snapshot


async def first_requests(items: list[Any]) -> None:
    """The gateway's first duplicates request and a registration's incremental check on a new
    snapshot (control/duplicates.py), and the event loop's longest stall meanwhile (before issue
    12's follow-up they ran on the loop: the stall was the whole computation)."""
    gateway = SimpleNamespace(snapshot=Snapshot(items=tuple(items), version=1))
    duplicates = Duplicates(gateway)  # type: ignore[arg-type]
    took, worst = await stalled(duplicates.groups)
    print(f"first GET /api/v1/catalog/duplicates (index + groups): {took * 1000:.0f} ms, longest event-loop stall {worst * 1000:.1f} ms")
    gateway.snapshot = Snapshot(items=tuple(items), version=2)
    took, worst = await stalled(lambda: duplicates.of_upstream("up3"))
    print(f"registration's duplicates on a new snapshot (index + one upstream): {took * 1000:.0f} ms, longest stall {worst * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstreams", type=int, default=10)
    parser.add_argument("--tools", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    items = catalog(args.upstreams, args.tools)
    planted = sum(1 for i in items if i.key.endswith("_copy"))
    full, cpu = [], []
    for _ in range(args.runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        groups = find_duplicates(items)
        full.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    found = sum(1 for g in groups if any(t.endswith("_copy") for t in g.tools))
    print(f"catalog: {len(items)} tools on {args.upstreams} upstreams, {planted} planted near-duplicates")
    print(f"whole analysis: median {statistics.median(full) * 1000:.0f} ms wall, "
          f"{statistics.median(cpu) * 1000:.0f} ms CPU over {args.runs} runs; "
          f"{len(groups)} groups, {found} containing a planted duplicate")
    start = time.perf_counter()
    index = DuplicateIndex(items)
    built = time.perf_counter() - start
    start = time.process_time()
    pairs = duplicates_of(index, "up3")
    incremental = time.process_time() - start
    print(f"index build {built * 1000:.0f} ms; one upstream's {len(index.indices_of('up3'))} tools against the rest: "
          f"{incremental * 1000:.0f} ms CPU, {len(pairs)} pairs")
    asyncio.run(first_requests(items))


if __name__ == "__main__":
    main()
