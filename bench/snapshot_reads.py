"""Benchmark: the reads every configuration change makes on every replica to build its next snapshot
(upstreams, catalog items, virtual servers, pin records), with the longest event-loop stall while each
runs: what every other request of that replica waits at worst meanwhile.

The catalog (bench/catalog_gen.py, approved as an admin would) is written to a fresh SQLite file, or
to a fresh PostgreSQL database with --postgres. Each read is timed cold (first read), warm (nothing
changed since the last read) and after one upstream was rediscovered with every tool changed (what
a change costs the other replicas). The cyclic GC is set as `bastion serve` sets it.

    .venv/bin/python bench/snapshot_reads.py [--upstreams 10] [--tools-each 1000] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from catalog_scale import seed
from loop_stall import stalled

from bastion.cli.serve import settle_heap
from bastion.store.sql.repo import SqlConfigRepo, make_engine
from bastion.vault.envelope import Envelope
from bastion.vault.keys import load_key_ring


@asynccontextmanager
async def database(postgres: bool, tmp: str) -> AsyncIterator[str]:
    if not postgres:
        yield f"sqlite+aiosqlite:///{tmp}/bench.db"
        return
    import asyncpg

    name = f"bastion_bench_{os.urandom(6).hex()}"
    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def measure(label: str, read: Callable[[], Awaitable[Any]], rounds: int) -> None:
    runs = [await stalled(read) for _ in range(rounds)]
    took = statistics.median(r[0] for r in runs) * 1e3
    worst = max(r[1] for r in runs) * 1e3
    print(f"{label:<34} {took:8.1f} ms   longest stall {worst:7.1f} ms")


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with database(args.postgres, tmp) as url:
            key = base64.b64encode(os.urandom(32)).decode()
            await seed(f"{tmp}/bench.db", key, args.upstreams, args.tools_each, url)
            engine = make_engine(url)
            ring = load_key_ring(key=key, key_file=Path(f"{tmp}/bench.db.key"), previous=[], may_generate=False)
            repo = SqlConfigRepo(engine, Envelope(ring))
            settle_heap()
            reads = {"upstreams": repo.list_upstreams, "items": repo.list_items, "servers": repo.list_servers, "pins": repo.list_pins}
            print(f"{args.upstreams} upstreams x {args.tools_each} tools, {'PostgreSQL' if args.postgres else 'SQLite'}; load {os.getloadavg()[0]:.2f}")
            for name, read in reads.items():
                await measure(f"{name}, cold", read, 1)
                await measure(f"{name}, warm (median of {args.rounds})", read, args.rounds)
            await rediscover_one(repo)
            for name in ("items", "pins"):
                await measure(f"{name}, after one upstream changed", reads[name], 1)
            await engine.dispose()


async def rediscover_one(repo: SqlConfigRepo) -> None:
    """Upstream up0 rediscovered with every tool's description changed, and its pins re-approved."""
    from datetime import UTC, datetime

    from bastion.core.pinning import approve

    items = [i for i in await repo.list_items() if i.upstream == "up0"]
    changed = [i.model_copy(update={"definition": {**i.definition, "description": i.definition["description"] + "!"}}) for i in items]
    stored = await repo.replace_items("up0", changed)
    await repo.save_pins([approve(i, "bench", datetime.now(UTC)) for i in stored])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstreams", type=int, default=10)
    parser.add_argument("--tools-each", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", action="store_true")
    asyncio.run(main(parser.parse_args()))
