"""Benchmark: a tool call through the REST facade versus the same call through the MCP endpoint.

Both go through one Bastion (`bastion serve`, its own process) to the same fixture upstream over
Streamable HTTP; prints calls per second, p50/p99 and the gateway's CPU time per call for the
facade (plain httpx POSTs) and for MCP in both client eras (the SDK's `Client`).

    python bench/facade_overhead.py [--calls 2000] [--warmup 200] [--entry rest] [--concurrency 1]
    python bench/facade_overhead.py --entry rest --concurrency 1 --profile rest.prof  # then: python -m pstats rest.prof
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_overhead import TOKEN, cpu_seconds, run_load, start_gateway, start_upstream, summary

HEADERS = {"Authorization": f"Bearer {TOKEN}"}
KINDS = ("rest", "2026-07-28", "legacy")


async def rest_load(base: str, calls: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    url = f"{base}/api/v1/servers/bench/tools/up__echo"
    async with httpx2.AsyncClient(headers=HEADERS, timeout=30, limits=httpx2.Limits(max_connections=64)) as http:
        remaining = calls

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                response = await http.post(url, json={"text": "hello"})
                response.raise_for_status()
                latencies.append(time.perf_counter() - start)

        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(worker)
    return latencies


async def measure(
    kind: str, base: str, calls: int, warmup: int, concurrency: int, gw_pid: int, profile: str | None = None
) -> dict[str, float]:
    async def load(n: int) -> list[float]:
        if kind == "rest":
            return await rest_load(base, n, concurrency)
        return await run_load(f"{base}/servers/bench/mcp", kind, n, concurrency, HEADERS)

    await load(warmup)
    if profile is not None:
        os.kill(gw_pid, signal.SIGUSR1)  # profile_gateway.py: start profiling
    gw0 = cpu_seconds(gw_pid)
    start = time.perf_counter()
    latencies = await load(calls)
    result = summary(latencies, time.perf_counter() - start)
    if profile is not None:
        await anyio.sleep(1.5)  # the audit and usage writers flush within the profile
        os.kill(gw_pid, signal.SIGUSR2)  # write it
        await anyio.sleep(1)
    result["gateway_cpu_ms_per_call"] = (cpu_seconds(gw_pid) - gw0) * 1e3 / calls
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, action="append", help="Only this concurrency (repeatable)")
    parser.add_argument("--entry", choices=KINDS, action="append", help="Only this entry point (repeatable)")
    parser.add_argument("--profile", metavar="OUT", help="cProfile the gateway's measured calls into OUT (one entry and concurrency)")
    args = parser.parse_args()
    if args.profile:
        if len(args.entry or KINDS) != 1 or len(args.concurrency or (1, 16)) != 1:
            parser.error("--profile needs one --entry and one --concurrency")
        os.environ["BENCH_PROFILE_OUT"] = str(Path(args.profile).resolve())
        os.environ["BENCH_GATEWAY_WRAP"] = f"{sys.executable} {Path(__file__).with_name('profile_gateway.py')}"
    upstream, upstream_url = start_upstream()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        gateway, base = start_gateway(tmp)
        try:
            api = httpx2.Client(base_url=base, headers=HEADERS, timeout=60)
            api.post("/api/v1/upstreams", json={"name": "up", "transport": "streamable-http", "url": upstream_url}).raise_for_status()
            api.post("/api/v1/servers", json={"name": "bench", "upstreams": ["up"]}).raise_for_status()
            for concurrency in args.concurrency or (1, 16):
                for kind in args.entry or KINDS:
                    row = anyio.run(measure, kind, base, args.calls, args.warmup, concurrency, gateway.pid, args.profile)
                    rows.append((kind, concurrency, row))
        finally:
            gateway.terminate()
            gateway.wait(timeout=15)
            upstream.terminate()
            upstream.wait(timeout=15)
    print(f"{'entry':<11} {'conc':>4} | {'rps':>6} {'p50':>8} {'p99':>8} | {'gw cpu/call':>11}")
    for kind, conc, r in rows:
        name = "REST" if kind == "rest" else f"MCP {kind}"
        print(
            f"{name:<15} {conc:>4} | {r['rps']:>6.0f} {r['p50_ms']:>6.2f}ms {r['p99_ms']:>6.2f}ms | "
            f"{r['gateway_cpu_ms_per_call']:>9.3f}ms"
        )
    print(json.dumps({"calls": args.calls, "rows": [{"entry": k, "concurrency": c, **r} for k, c, r in rows]}))


if __name__ == "__main__":
    main()
