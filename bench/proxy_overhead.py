"""Benchmark: a tools/call through a Bastion virtual server versus the same upstream called directly.

Prints, for each client era (2025-11-25 legacy, 2026-07-28 modern) and concurrency (1, 16):
calls per second, p50/p99 latency, and the gateway process's CPU time per proxied call.

    python bench/proxy_overhead.py [--calls 2000] [--warmup 200]

Everything runs on loopback: the fixture upstream (streamable HTTP, its own process), Bastion
(`bastion serve`, its own process, SQLite in a temp dir), and the load client (this process).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ListRootsResult
from otlp_sink import start_sink

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "upstreams" / "fixture_server.py"
TOKEN = "bst_bench-token-0123456789abcdef"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    return cpu_seconds_of(Path(f"/proc/{pid}/stat"))


def loop_cpu_seconds(pid: int) -> float:
    """The CPU time of the process's main thread (the event loop's); the rest is its other threads
    (span export, the SQLite driver's, worker threads)."""
    return cpu_seconds_of(Path(f"/proc/{pid}/task/{pid}/stat"))


def cpu_seconds_of(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_upstream() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(FIXTURE), "--transport", "streamable-http", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline().split()[1])
    return proc, f"http://127.0.0.1:{port}/mcp"


GATEWAY_CPUS: set[int] | None = None
"""With --pin: the cores the gateway may use (the client and the upstream keep the others)."""


def _pin_gateway() -> None:
    if GATEWAY_CPUS is not None:
        os.sched_setaffinity(0, GATEWAY_CPUS)


def start_gateway(tmp: str, extra: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "BASTION_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
        "BASTION_ALLOW_PRIVATE_UPSTREAMS": "true",
        "BASTION_ADMIN_TOKEN": TOKEN,
        "BASTION_LOG_LEVEL": "WARNING",
        **(extra or {}),
    }
    wrap = os.environ.get("BENCH_GATEWAY_WRAP", "").split()  # e.g. "py-spy record -f raw -o gw.txt --"
    proc = subprocess.Popen(
        [*wrap, sys.executable, "-m", "bastion", "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_pin_gateway,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120  # a loaded machine starts slowly
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"{base}/healthz").status_code == 200:
                return proc, base
        except httpx2.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("gateway did not start")


ASKABLE = False
"""--askable: the client declares roots, so a 2025-11-25 client's calls run on its own upstream session."""


async def _roots(context: Any) -> ListRootsResult:
    return ListRootsResult(roots=[])


async def run_load(url: str, mode: str, calls: int, concurrency: int, headers: dict[str, str]) -> list[float]:
    latencies: list[float] = []
    http = httpx2.AsyncClient(headers=headers, timeout=30, limits=httpx2.Limits(max_connections=64))
    roots = _roots if ASKABLE else None
    async with Client(streamable_http_client(url, http_client=http), mode=mode, list_roots_callback=roots) as client:
        tools = await client.list_tools()
        name = next(t.name for t in tools.tools if t.name.endswith("echo"))
        remaining = calls

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                await client.call_tool(name, {"text": "hello"})
                latencies.append(time.perf_counter() - start)

        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(worker)
    return latencies


async def run_side_by_side(targets: list[tuple[str, int]], mode: str, seconds: float, concurrency: int) -> list[dict[str, float]]:
    """Load every (url, gateway pid) at once for `seconds`, `concurrency` calls in flight each, and
    return each gateway's calls and CPU per call. The gateways share the same moments of the
    machine, so a change in its speed during the run moves them all alike."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    roots = _roots if ASKABLE else None
    async with contextlib.AsyncExitStack() as stack:
        sessions = []
        for url, _ in targets:
            http = httpx2.AsyncClient(headers=headers, timeout=30, limits=httpx2.Limits(max_connections=64))
            client = await stack.enter_async_context(Client(streamable_http_client(url, http_client=http), mode=mode, list_roots_callback=roots))
            tools = await client.list_tools()
            sessions.append((client, next(t.name for t in tools.tools if t.name.endswith("echo"))))
        counts = [0] * len(targets)
        before = [cpu_seconds(pid) for _, pid in targets]
        deadline = time.perf_counter() + seconds

        async def worker(index: int) -> None:
            client, name = sessions[index]
            while time.perf_counter() < deadline:
                await client.call_tool(name, {"text": "hello"})
                counts[index] += 1

        async with anyio.create_task_group() as tg:
            for index in range(len(targets)):
                for _ in range(concurrency):
                    tg.start_soon(worker, index)
        after = [cpu_seconds(pid) for _, pid in targets]
    return [
        {"calls": count, "gateway_cpu_ms_per_call": (a - b) * 1e3 / max(count, 1)}
        for count, a, b in zip(counts, after, before, strict=True)
    ]


def summary(latencies: list[float], elapsed: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "rps": len(ordered) / elapsed,
        "p50_ms": statistics.median(ordered) * 1e3,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3,
    }


async def measure(
    url: str, mode: str, calls: int, warmup: int, concurrency: int, gw_pid: int | None, upstream_pid: int
) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    await run_load(url, mode, warmup, concurrency, headers)
    gw0 = cpu_seconds(gw_pid) if gw_pid else 0.0
    loop0 = loop_cpu_seconds(gw_pid) if gw_pid else 0.0
    up0, client0 = cpu_seconds(upstream_pid), time.process_time()
    start = time.perf_counter()
    latencies = await run_load(url, mode, calls, concurrency, headers)
    elapsed = time.perf_counter() - start
    result = summary(latencies, elapsed)
    result["upstream_cpu_ms_per_call"] = (cpu_seconds(upstream_pid) - up0) * 1e3 / calls
    result["client_cpu_ms_per_call"] = (time.process_time() - client0) * 1e3 / calls
    if gw_pid:
        result["gateway_cpu_ms_per_call"] = (cpu_seconds(gw_pid) - gw0) * 1e3 / calls
        result["gateway_loop_cpu_ms_per_call"] = (loop_cpu_seconds(gw_pid) - loop0) * 1e3 / calls
    return result


# Telemetry off: no call is counted, logged, audited or traced. On: metrics, the INFO line per call
# (JSON, to /dev/null), the audit log, usage buckets, and traces exported to a local OTLP receiver.
TELEMETRY_OFF = {"BASTION_OBSERVE_CALLS": "false"}


def telemetry_on(receiver: str | None, sampled: float = 1.0, log_line: bool = True) -> dict[str, str]:
    on = {"BASTION_OBSERVE_CALLS": "true", "BASTION_LOG_LEVEL": "INFO" if log_line else "WARNING", "BASTION_LOG_FORMAT": "json"}
    if receiver is not None:
        on["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"{receiver}/v1/traces"
        on["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
        on["OTEL_TRACES_SAMPLER_ARG"] = str(sampled)
    return on


def telemetry_settings(receiver: str) -> dict[str, dict[str, str]]:
    """The settings --telemetry compares with "off", by label."""
    return {
        "on": telemetry_on(None),
        "traces10": telemetry_on(receiver, 0.1),
        "traces100": telemetry_on(receiver, 1.0),
        # What the budget names (metrics, audit, traces) with usage, without the INFO line per call,
        # with traces sampled at 10% and at 100%.
        "nolog10": telemetry_on(receiver, 0.1, log_line=False),
        "nolog100": telemetry_on(receiver, 1.0, log_line=False),
    }


def _start_registered(tmp: str, extra: dict[str, str], url: str) -> tuple[subprocess.Popen[bytes], str]:
    """A fresh gateway with these settings, the upstream added and the bench's virtual server on it."""
    gateway, base = start_gateway(tmp, extra)
    api = httpx2.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    api.post("/api/v1/upstreams", json={"name": "up", "transport": "streamable-http", "url": url}).raise_for_status()
    api.post("/api/v1/servers", json={"name": "bench", "upstreams": ["up"]}).raise_for_status()
    return gateway, f"{base}/servers/bench/mcp"


def _telemetry_run(extra: dict[str, str], url: str, mode: str, concurrency: int, args: argparse.Namespace, upstream_pid: int) -> dict[str, float]:
    """One fresh gateway with these settings, measured once."""
    with tempfile.TemporaryDirectory() as tmp:
        gateway, server_url = _start_registered(tmp, extra, url)
        try:
            return anyio.run(measure, server_url, mode, args.calls, args.warmup, concurrency, gateway.pid, upstream_pid)
        finally:
            gateway.terminate()
            gateway.wait(timeout=15)


def compare_side_by_side(args: argparse.Namespace) -> None:
    """Each setting against off with both gateways running and loaded at the same time (with --pin,
    on the same core): the ratio of their CPU per call within a round does not move with the shared
    machine's speed the way two runs a minute apart do. The median of the rounds' ratios is reported."""
    upstream, upstream_url = start_upstream()
    sink, receiver = start_sink()
    settings = telemetry_settings(receiver)
    labels = args.settings or ["on", "traces10", "traces100"]
    rows = []
    try:
        for mode in args.era or ("legacy", "2026-07-28"):
            for concurrency in args.concurrency or (1, 16):
                ratios: dict[str, list[float]] = {label: [] for label in labels}
                off_ms: list[float] = []
                for _ in range(args.rounds):
                    for label in labels:
                        with tempfile.TemporaryDirectory() as tmp_off, tempfile.TemporaryDirectory() as tmp_on:
                            started = [
                                _start_registered(tmp_off, TELEMETRY_OFF, upstream_url),
                                _start_registered(tmp_on, settings[label], upstream_url),
                            ]
                            try:
                                targets = [(url, gateway.pid) for gateway, url in started]
                                anyio.run(run_side_by_side, targets, mode, args.warmup_seconds, concurrency)
                                off, on = anyio.run(run_side_by_side, targets, mode, args.seconds, concurrency)
                            finally:
                                for gateway, _ in started:
                                    gateway.terminate()
                                    gateway.wait(timeout=15)
                        off_ms.append(off["gateway_cpu_ms_per_call"])
                        ratios[label].append(on["gateway_cpu_ms_per_call"] / off["gateway_cpu_ms_per_call"])
                rows.append((mode, concurrency, statistics.median(off_ms), ratios))
    finally:
        upstream.terminate()
        upstream.wait(timeout=15)
        sink.terminate()
        sink.wait(timeout=15)
    print(f"load average {os.getloadavg()[0]:.2f}; side by side: off and each setting loaded together for {args.seconds:g} s,")
    print(f"{args.rounds} round(s); CPU per call added over off, median of the rounds' ratios (lowest..highest)")
    print(f"{'era':<11} {'conc':>4} | {'off':>8} | " + " | ".join(f"{label:>22}" for label in labels))
    for mode, conc, off_median, ratios in rows:
        cells = [
            f"{statistics.median(r) - 1:>+6.1%} ({min(r) - 1:+.1%}..{max(r) - 1:+.1%})" for r in (ratios[label] for label in labels)
        ]
        print(f"{mode:<11} {conc:>4} | {off_median:>6.3f}ms | " + " | ".join(f"{c:>22}" for c in cells))
    print(json.dumps({"side_by_side": [
        {"era": m, "concurrency": c, "off_ms": o, "ratios": {k: [round(x, 4) for x in v] for k, v in r.items()}}
        for m, c, o, r in rows
    ]}))


def compare_telemetry(args: argparse.Namespace) -> None:
    """Gateway CPU per call with telemetry off and on, for each era and concurrency; with --rounds N
    the four settings are run N times in turn and the median of each is reported."""
    upstream, upstream_url = start_upstream()
    sink, receiver = start_sink()
    rows = []
    settings = telemetry_settings(receiver)
    labels = args.settings or ["on", "traces10", "traces100"]
    configs = (("off", TELEMETRY_OFF), *((label, settings[label]) for label in labels))
    try:
        for mode in args.era or ("legacy", "2026-07-28"):
            for concurrency in args.concurrency or (1, 16):
                runs: dict[str, list[dict[str, float]]] = {label: [] for label, _ in configs}
                for _ in range(args.rounds):
                    for label, extra in configs:
                        runs[label].append(_telemetry_run(extra, upstream_url, mode, concurrency, args, upstream.pid))
                figures = {
                    label: {
                        "gateway_cpu_ms_per_call": statistics.median(f["gateway_cpu_ms_per_call"] for f in r),
                        "gateway_cpu_ms_runs": [round(f["gateway_cpu_ms_per_call"], 3) for f in r],
                        "loop_cpu_ms_per_call": statistics.median(f["gateway_loop_cpu_ms_per_call"] for f in r),
                        "rps": statistics.median(f["rps"] for f in r),
                        # The bench client's CPU per call is the same work in every setting: the
                        # gateway's CPU over it takes out how fast the shared machine ran that run.
                        "per_client_cpu": statistics.median(
                            f["gateway_cpu_ms_per_call"] / f["client_cpu_ms_per_call"] for f in r
                        ),
                        "per_client_cpu_runs": [
                            round(f["gateway_cpu_ms_per_call"] / f["client_cpu_ms_per_call"], 3) for f in r
                        ],
                    }
                    for label, r in runs.items()
                }
                rows.append((mode, concurrency, figures))
    finally:
        upstream.terminate()
        upstream.wait(timeout=15)
        sink.terminate()
        sink.wait(timeout=15)
    print(f"load average {os.getloadavg()[0]:.2f}; {args.calls} calls per run, median of {args.rounds} run(s) each")
    print("gateway CPU per call; on = metrics + JSON log line + audit + usage; traces at 10% / 100% sampling on top;")
    print("nolog10 / nolog100 = on + traces at 10% / 100%, without the INFO line per call (BASTION_LOG_LEVEL=WARNING);")
    print("\"of which loop\": the main (event loop) thread alone, the rest being the span export and SQLite threads")
    print("\"per client cpu\": the gateway's CPU per call over the bench client's in the same run (the client's work is")
    print("  the same in every setting, so this takes out the machine's speed changing between runs)")
    print(f"{'era':<11} {'conc':>4} | {'off':>8} | " + " | ".join(f"{label:>9} {'added':>7}" for label in labels))
    for mode, conc, figures in rows:
        base = figures["off"]["gateway_cpu_ms_per_call"]
        cells = []
        for label in labels:
            value = figures[label]["gateway_cpu_ms_per_call"]
            cells.append(f"{value:>7.3f}ms {value / base - 1:>+7.1%}")
        print(f"{mode:<11} {conc:>4} | {base:>6.3f}ms | " + " | ".join(cells))
        loop = [figures[label]["loop_cpu_ms_per_call"] for label in ("off", *labels)]
        print(f"{'  of which':<11} {'loop':>4} | {loop[0]:>6.3f}ms | " + " | ".join(f"{v:>7.3f}ms {v / loop[0] - 1:>+7.1%}" for v in loop[1:]))
        ratio = [figures[label]["per_client_cpu"] for label in ("off", *labels)]
        print(f"{'  per client':<11} {'cpu':>4} | {ratio[0]:>6.3f}x  | " + " | ".join(f"{v:>7.3f}x  {v / ratio[0] - 1:>+7.1%}" for v in ratio[1:]))
    print(json.dumps({"calls": args.calls, "telemetry": [{"era": m, "concurrency": c, **f} for m, c, f in rows]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--era", choices=("legacy", "2026-07-28"), action="append", help="Only this era (repeatable)")
    parser.add_argument("--concurrency", type=int, action="append", help="Only this concurrency (repeatable)")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="Give the gateway the last core and the client and upstream the others, as in a deployment where "
        "the gateway does not share CPUs with its clients and upstreams (direct runs use the same cores)",
    )
    parser.add_argument(
        "--telemetry",
        action="store_true",
        help="Instead: the gateway's CPU per call with metrics, logs, audit, usage and tracing (to a local "
        "OTLP receiver) off versus on",
    )
    parser.add_argument("--rounds", type=int, default=1, help="With --telemetry: run each setting this many times, in turn")
    parser.add_argument(
        "--settings",
        choices=("on", "traces10", "traces100", "nolog10", "nolog100"),
        action="append",
        help="With --telemetry: compare only these settings with off (repeatable; default on, traces10, traces100)",
    )
    parser.add_argument(
        "--side-by-side",
        action="store_true",
        help="With --telemetry: run off and each setting at the same time, loaded together for --seconds, and "
        "report the ratio of their CPU per call (steadier on a shared machine than runs one after another)",
    )
    parser.add_argument("--seconds", type=float, default=6.0, help="With --side-by-side: how long each round loads the gateways")
    parser.add_argument("--warmup-seconds", type=float, default=1.5, help="With --side-by-side: load before measuring")
    parser.add_argument(
        "--askable",
        action="store_true",
        help="The client declares roots: a 2025-11-25 client's calls run on an upstream session of its own",
    )
    args = parser.parse_args()
    if args.askable:
        global ASKABLE
        ASKABLE = True
    if args.pin:
        global GATEWAY_CPUS
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) < 2:
            parser.error("--pin needs at least two cores")
        GATEWAY_CPUS = {cores[-1]}
        os.sched_setaffinity(0, set(cores[:-1]))  # this process (the client) and the upstream it starts
    if args.telemetry:
        (compare_side_by_side if args.side_by_side else compare_telemetry)(args)
        return
    upstream, upstream_url = start_upstream()
    with tempfile.TemporaryDirectory() as tmp:
        gateway, base = start_gateway(tmp)
        try:
            api = httpx2.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
            api.post("/api/v1/upstreams", json={"name": "up", "transport": "streamable-http", "url": upstream_url}).raise_for_status()
            api.post("/api/v1/servers", json={"name": "bench", "upstreams": ["up"]}).raise_for_status()
            rows = []
            for mode in args.era or ("legacy", "2026-07-28"):
                for concurrency in args.concurrency or (1, 16):
                    direct = anyio.run(measure, upstream_url, mode, args.calls, args.warmup, concurrency, None, upstream.pid)
                    proxied = anyio.run(
                        measure, f"{base}/servers/bench/mcp", mode, args.calls, args.warmup, concurrency, gateway.pid, upstream.pid
                    )
                    rows.append((mode, concurrency, direct, proxied))
        finally:
            gateway.terminate()
            gateway.wait(timeout=15)
            upstream.terminate()
            upstream.wait(timeout=15)
    print(f"{'era':<11} {'conc':>4} | {'direct rps':>10} {'p50':>7} {'p99':>7} | {'bastion rps':>11} {'p50':>7} {'p99':>7} | "
          f"{'added p50':>9} {'rps ratio':>9} {'gw cpu/call':>11} | cpu/call direct: client upstream | via bastion: client upstream")
    for mode, conc, d, p in rows:
        print(
            f"{mode:<11} {conc:>4} | {d['rps']:>10.0f} {d['p50_ms']:>6.2f}m {d['p99_ms']:>6.2f}m | "
            f"{p['rps']:>11.0f} {p['p50_ms']:>6.2f}m {p['p99_ms']:>6.2f}m | "
            f"{p['p50_ms'] - d['p50_ms']:>8.2f}m {p['rps'] / d['rps']:>9.2f} {p['gateway_cpu_ms_per_call']:>9.3f}ms | "
            f"{d['client_cpu_ms_per_call']:>22.2f} {d['upstream_cpu_ms_per_call']:>8.2f} | "
            f"{p['client_cpu_ms_per_call']:>18.2f} {p['upstream_cpu_ms_per_call']:>8.2f}"
        )
    print(json.dumps({"calls": args.calls, "rows": [{"era": m, "concurrency": c, "direct": d, "bastion": p} for m, c, d, p in rows]}))


if __name__ == "__main__":
    main()
