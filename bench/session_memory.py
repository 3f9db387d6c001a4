"""Benchmark: memory per idle 2025-11-25 session on one Bastion.

Opens `--sessions` legacy sessions (initialize + notifications/initialized, then nothing) against
one `bastion serve` and prints the gateway's RSS growth per session, read from /proc/<pid>/status.
With `--redis URL` the sessions' records go to Redis too (what a multi-replica deployment runs).
With `--upstream-sessions` each session declares a capability an upstream could ask (roots) and
makes one call, so it holds an upstream session of its own (era mirroring), then stays idle.
With `--per-caller N` the caller's bound on open sessions is N (default: more than `--sessions`):
the one token opening them all keeps N, and the figure shows what the bound spares.

    python bench/session_memory.py [--sessions 1000] [--redis redis://127.0.0.1:6379/0] [--upstream-sessions]
        [--settle SECONDS] [--per-caller N]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import anyio
import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_overhead import TOKEN, free_port, start_upstream

LEGACY = "2025-11-25"
PREFIX = f"bench-{uuid.uuid4().hex[:8]}"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json, text/event-stream"}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def start_gateway(tmp: str, redis_url: str | None, per_caller: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "BASTION_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
        "BASTION_ALLOW_PRIVATE_UPSTREAMS": "true",  # the upstream is on loopback
        # One user opens them all: no bound may close one before it is measured.
        "BASTION_UPSTREAM_SESSIONS_PER_USER": "100000",
        "BASTION_UPSTREAM_SESSIONS_PER_UPSTREAM": "100000",
        "BASTION_MCP_SESSIONS_PER_CALLER": str(per_caller),
        "BASTION_MCP_SESSIONS_PER_SERVER": str(max(per_caller + 1, 10_000)),
        "BASTION_ADMIN_TOKEN": TOKEN,
        "BASTION_LOG_LEVEL": "WARNING",
        "BASTION_STATE_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
    if redis_url:
        env |= {"BASTION_REDIS_URL": redis_url, "BASTION_REDIS_PREFIX": PREFIX}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bastion", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    with httpx2.Client(timeout=1) as http:
        for _ in range(300):
            try:
                if http.get(f"{base}/healthz").status_code == 200:
                    return proc, base
            except httpx2.HTTPError:
                pass
            anyio.run(anyio.sleep, 0.1)
    raise RuntimeError("gateway did not start")


async def open_sessions(url: str, count: int, concurrency: int = 16, call: bool = False) -> list[str]:
    """Open `count` idle sessions (with `call`: each declaring roots and making one call); their ids."""
    ids: list[str] = []
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": LEGACY,
            "capabilities": {"roots": {}} if call else {},
            "clientInfo": {"name": "bench", "version": "1"},
        },
    }
    echo = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "up__echo", "arguments": {"text": "x"}}}
    done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    remaining = count
    async with httpx2.AsyncClient(headers=HEADERS, timeout=30) as http:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                response = await http.post(url, json=init)
                response.raise_for_status()
                session_id = response.headers["mcp-session-id"]
                extra = {"Mcp-Session-Id": session_id, "Mcp-Protocol-Version": LEGACY}
                (await http.post(url, json=done, headers=extra)).raise_for_status()
                if call:
                    answer = await http.post(url, json=echo, headers=extra)
                    answer.raise_for_status()
                    assert b'"x"' in answer.content, answer.text
                ids.append(session_id)

        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(worker)
    return ids


def drop_keys(redis_url: str) -> None:
    from redis import Redis

    redis = Redis.from_url(redis_url)
    names = list(redis.scan_iter(match=f"{PREFIX}:*"))
    if names:
        redis.delete(*names)
    redis.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--redis", default=None, help="Redis URL: keep session records there too")
    parser.add_argument("--upstream-sessions", action="store_true", help="each session holds its own upstream session")
    parser.add_argument(
        "--settle",
        type=float,
        default=0.0,
        help="seconds to wait after the calls before reading RSS (a caller's upstream GET stream closes 15 s after its last call)",
    )
    parser.add_argument("--per-caller", type=int, default=None, help="the caller's session bound (default: no effect)")
    args = parser.parse_args()
    per_caller = args.per_caller if args.per_caller is not None else args.sessions + args.warmup + 1
    upstream, upstream_url = start_upstream()
    with tempfile.TemporaryDirectory() as tmp:
        gateway, base = start_gateway(tmp, args.redis, per_caller)
        try:
            api = httpx2.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
            api.post(
                "/api/v1/upstreams", json={"name": "up", "transport": "streamable-http", "url": upstream_url}
            ).raise_for_status()
            api.post("/api/v1/servers", json={"name": "bench", "upstreams": ["up"]}).raise_for_status()
            url = f"{base}/servers/bench/mcp"
            # First-use allocations (imports, pools) out of the figure.
            anyio.run(open_sessions, url, args.warmup, 16, args.upstream_sessions)
            time.sleep(args.settle)
            before = rss_kib(gateway.pid)
            anyio.run(open_sessions, url, args.sessions, 16, args.upstream_sessions)
            right_after = rss_kib(gateway.pid)
            time.sleep(args.settle)
            after = rss_kib(gateway.pid)
        finally:
            gateway.terminate()
            gateway.wait(timeout=60)
            upstream.terminate()
            upstream.wait(timeout=15)
            if args.redis:
                drop_keys(args.redis)
    per_session = (after - before) / args.sessions
    store = ("redis" if args.redis else "in-process") + (", each with its own upstream session" if args.upstream_sessions else "")
    bound = f", caller bound {args.per_caller}: older sessions closed as newer ones open" if args.per_caller else ""
    print(
        f"{args.sessions} idle legacy sessions ({store} store{bound}): RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB, "
        f"{per_session:.1f} KiB per session"
        + (f" ({(right_after - before) / args.sessions:.1f} KiB right after the calls)" if args.settle else "")
    )
    print(
        json.dumps(
            {
                "sessions": args.sessions,
                "store": store,
                "rss_before_kib": before,
                "rss_after_kib": after,
                "rss_right_after_calls_kib": right_after,
                "settle_s": args.settle,
                "kib_per_session": round(per_session, 2),
                "per_caller": args.per_caller,
            }
        )
    )


if __name__ == "__main__":
    main()
