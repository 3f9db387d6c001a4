"""How long building the snapshot takes for a large catalog, and how long the event loop stalls
while it is built inline versus in a worker thread (what Gateway.rebuild does).

    .venv/bin/python bench/snapshot_build.py --upstreams 4 --tools 5000 --servers 4
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from loop_stall import stalled

from bastion.core.models import CatalogItem, Upstream, UpstreamSpec, VirtualServerSpec
from bastion.core.pinning import PinBook, approve
from bastion.core.snapshot import build_snapshot


def catalog(upstreams: int, tools: int, pin: str = "new") -> tuple[list[Upstream], list[CatalogItem], PinBook]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    mode = "off" if pin == "off" else "block"
    ups = [Upstream(spec=UpstreamSpec(name=f"u{u}", transport="stdio", command="x", pin=mode)) for u in range(upstreams)]
    items = [
        CatalogItem(
            upstream=f"u{u}", kind="tool", key=f"tool_{t}", gateway_name=f"u{u}__tool_{t}",
            definition={"name": f"tool_{t}", "description": "x" * 200, "inputSchema": {"type": "object", "properties": {"a": {"type": "string"}}}},
            discovered_at=start + timedelta(seconds=u),
        )
        for u in range(upstreams)
        for t in range(tools)
    ]
    pins = PinBook(records=tuple(approve(i, "bench", start) for i in items) if pin == "approved" else ())
    return ups, items, pins


async def worst_stall(build: Callable[[], object], inline: bool) -> float:
    """The longest gap between 1 ms ticks of the loop while the snapshot is built."""
    return (await stalled(build if inline else lambda: asyncio.to_thread(build)))[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstreams", type=int, default=4)
    parser.add_argument("--tools", type=int, default=5000)
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--rebuilds", type=int, default=3)
    parser.add_argument("--pin", choices=("new", "approved", "off"), default="new",
                        help="the items' pin state: all waiting for approval (block), all approved, or pin off")
    args = parser.parse_args()
    ups, items, pins = catalog(args.upstreams, args.tools, args.pin)
    names = tuple(u.spec.name for u in ups)
    specs = [VirtualServerSpec(name=f"vs{s}", upstreams=names) for s in range(args.servers)]
    build = partial(build_snapshot, ups, items, specs, pins=pins)
    started, cpu = time.perf_counter(), time.process_time()
    build()
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"{args.upstreams} upstreams x {args.tools} tools ({args.pin}), {args.servers} servers: "
          f"build {took * 1000:.0f} ms ({cpu * 1000:.0f} ms CPU)")
    # A rebuild after a change that touches none of the servers' inputs (an upstream's health, a
    # server added): the views of the previous snapshot are kept, with what they cached, and so are
    # the definition hashes and waiting approvals of the items (core/pinning.PinMemo).
    previous = build()
    extra = [*specs, VirtualServerSpec(name="added", upstreams=names[:1])]
    for _ in range(args.rebuilds):
        started, cpu = time.perf_counter(), time.process_time()
        again = build_snapshot(ups, items, extra, pins=pins, previous=previous)
        took, cpu = time.perf_counter() - started, time.process_time() - cpu
        kept = sum(again.servers[s.name] is previous.servers[s.name] for s in specs)
        print(f"  rebuild with one server added: {took * 1000:.0f} ms ({cpu * 1000:.0f} ms CPU; {kept} of {len(specs)} views kept)")
        previous = build()
    for inline in (True, False):
        stall = asyncio.run(worst_stall(build, inline))
        print(f"  {'inline' if inline else 'thread'}: longest event-loop stall {stall * 1000:.0f} ms")


if __name__ == "__main__":
    main()
