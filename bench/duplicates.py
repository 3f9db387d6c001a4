"""Duplicate detection on a generated 10,000-tool catalog: the whole analysis, and a new upstream's tools
against the rest (incremental). Prints timings and what was found; never fails on a number.

    .venv/bin/python bench/duplicates.py [--upstreams 10] [--tools 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalog_gen import catalog

from bastion.core.duplicates import DuplicateIndex, duplicates_of, find_duplicates


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


if __name__ == "__main__":
    main()
