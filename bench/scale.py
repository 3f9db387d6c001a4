"""Benchmark: throughput of 1, 2 and 3 Bastion replicas sharing one PostgreSQL database (and Redis,
when --redis is given), with the load spread over the replicas the way a connection-balancing
proxy spreads it.

    python bench/scale.py [--calls 3000] [--concurrency 24] [--replicas 1 2 3] [--redis redis://127.0.0.1:6379/0]

Each replica is a `bastion serve` process; the upstream is the fixture server over Streamable
HTTP; workers are SDK clients (2026-07-28 and 2025-11-25 eras), worker i talking to replica
i mod N. Prints calls per second, p50/p99 and the summed CPU of the replicas per call. On a
machine with fewer cores than replicas + upstream + client, adding replicas cannot add
throughput: read the CPU column, which says what each call costs, not the rps column alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import anyio
import asyncpg  # type: ignore[import-untyped]
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_overhead import TOKEN, cpu_seconds, free_port, start_upstream, summary

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


async def create_database() -> str:
    name = f"bastion_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def start_replica(database: str, redis: str | None, prefix: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "BASTION_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}",
        "BASTION_ADMIN_TOKEN": TOKEN,
        "BASTION_LOG_LEVEL": "WARNING",
        "BASTION_ALLOW_PRIVATE_UPSTREAMS": "true",
        "BASTION_STATE_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        "BASTION_VAULT_KEY": "YmVuY2gtdmF1bHQta2V5LTAxMjM0NTY3ODlhYmNkZWY=",
    }
    if redis:
        env.update({"BASTION_REDIS_URL": redis, "BASTION_REDIS_PREFIX": prefix})
    proc = subprocess.Popen(
        [sys.executable, "-m", "bastion", "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"{base}/readyz").status_code == 200:
                return proc, base
        except httpx2.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("replica did not become ready")


async def load(bases: list[str], mode: str, calls: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    remaining = calls
    headers = {"Authorization": f"Bearer {TOKEN}"}

    async def worker(index: int) -> None:
        nonlocal remaining
        http = httpx2.AsyncClient(headers=headers, timeout=60)
        url = f"{bases[index % len(bases)]}/servers/bench/mcp"
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                await client.call_tool("up__echo", {"text": "hello"})
                latencies.append(time.perf_counter() - start)

    async with anyio.create_task_group() as tg:
        for index in range(concurrency):
            tg.start_soon(worker, index)
    return latencies


def measure(bases: list[str], pids: list[int], mode: str, calls: int, concurrency: int) -> dict[str, float]:
    anyio.run(load, bases, mode, max(200, calls // 10), concurrency)  # warm up every replica
    cpu0 = sum(cpu_seconds(pid) for pid in pids)
    start = time.perf_counter()
    latencies = anyio.run(load, bases, mode, calls, concurrency)
    elapsed = time.perf_counter() - start
    result = summary(latencies, elapsed)
    result["replicas_cpu_ms_per_call"] = (sum(cpu_seconds(pid) for pid in pids) - cpu0) * 1e3 / calls
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--redis", default=None, help="BASTION_REDIS_URL for the replicas (default: none)")
    args = parser.parse_args()
    upstream, upstream_url = start_upstream()
    database = anyio.run(create_database)
    rows = []
    try:
        for count in args.replicas:
            with ExitStack() as stack:
                prefix = f"bench-{uuid.uuid4().hex[:8]}"
                replicas = []
                for _ in range(count):
                    proc, base = start_replica(database, args.redis, prefix)
                    stack.callback(proc.wait, 30)
                    stack.callback(proc.terminate)
                    replicas.append((proc, base))
                api = httpx2.Client(base_url=replicas[0][1], headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
                if count == args.replicas[0]:
                    body = {"name": "up", "transport": "streamable-http", "url": upstream_url}
                    api.post("/api/v1/upstreams", json=body).raise_for_status()
                    api.post("/api/v1/servers", json={"name": "bench", "upstreams": ["up"]}).raise_for_status()
                bases, pids = [b for _, b in replicas], [p.pid for p, _ in replicas]
                for mode in ("2026-07-28", "legacy"):
                    rows.append((count, mode, measure(bases, pids, mode, args.calls, args.concurrency)))
    finally:
        upstream.terminate()
        upstream.wait(timeout=15)
        anyio.run(drop_database, database)
    print(f"{'replicas':>8} {'era':<11} | {'rps':>6} {'p50':>8} {'p99':>8} | {'replicas cpu/call':>17}")
    for count, mode, r in rows:
        print(
            f"{count:>8} {mode:<11} | {r['rps']:>6.0f} {r['p50_ms']:>7.2f}m {r['p99_ms']:>7.2f}m | "
            f"{r['replicas_cpu_ms_per_call']:>15.3f}ms"
        )
    print(json.dumps({"calls": args.calls, "concurrency": args.concurrency, "rows": [
        {"replicas": c, "era": m, **r} for c, m, r in rows
    ]}))


if __name__ == "__main__":
    main()
