"""Benchmark: a large catalog end to end — a full tools/list of one virtual server (every page), in both
eras, and the REST catalog search, with and without a policy on the server (issue 12). Budget: a full
list of 10,000 tools under 50 ms, a search under 10 ms.

The catalog (bench/catalog_gen.py: 10 upstreams x 1,000 plausible tools) is written to a fresh SQLite
database before `bastion serve` starts, as bench/admin_pages.py does (its upstreams point at a closed
port). Three virtual servers include every upstream: `everything`, `guarded` whose policy hides one
upstream's tools from the caller (a caller-filtered view), and `found` with `discovery: "search"`.

The full listing is timed three ways, each from the first request sent to the last page received:
- raw: one keep-alive connection written and read by hand (bench/raw_http.py), the next cursor read
  from a page's tail; no page is decoded, so this is the time to last byte the gateway and the wire
  give (the budget's measure). The client's `json.loads` of those pages is then timed on its own,
  with the cyclic GC on and off;
- the SDK's `Client` (2026-07-28), which also validates every tool into a model;
- plain JSON-RPC over httpx in both eras, decoding each page as it comes.
Each row also prints the gateway's CPU per round (from /proc, 10 ms ticks, so rough) and this
process's (the client's).

    python bench/catalog_scale.py [--upstreams 10] [--tools-each 1000] [--rounds 30]
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from admin_pages import gateway_process, pct, settle
from catalog_gen import catalog
from proxy_overhead import cpu_seconds, free_port
from raw_http import RawHttp, next_cursor

from bastion.core.models import Upstream, UpstreamSpec, UpstreamState, VirtualServerSpec
from bastion.core.pinning import approve
from bastion.core.policy import Policy, PolicyRule
from bastion.store.sql.migrate import upgrade
from bastion.store.sql.repo import SqlConfigRepo, make_engine
from bastion.vault.envelope import Envelope
from bastion.vault.keys import load_key_ring

TOKEN = "bst_bench-token-0123456789abcdef"
MODERN, LEGACY = "2026-07-28", "2025-11-25"
SEARCHES = ("q=invoice", "q=create+issue", "q=up3__", "q=tool+that+will")


async def seed(db: str, vault_key: str, upstreams: int, each: int, url: str | None = None) -> None:
    """The catalog written to SQLite file `db` (or to the database at `url`; the vault key file is
    still `db`.key)."""
    engine = make_engine(url or f"sqlite+aiosqlite:///{db}", 5)
    try:
        await upgrade(engine)
        ring = load_key_ring(key=vault_key, key_file=Path(db + ".key"), previous=[], may_generate=False)
        repo = SqlConfigRepo(engine, Envelope(ring))
        items = catalog(upstreams, each, duplicate_share=0.0)
        now = datetime.now(UTC)
        for u in range(upstreams):
            name = f"up{u}"
            spec = UpstreamSpec(name=name, transport="streamable-http", url="http://127.0.0.1:9/mcp", visibility="public")
            mine = [i for i in items if i.upstream == name]
            await repo.create_upstream(Upstream(spec=spec, state=UpstreamState(status="healthy")), mine)
            # Approved, as an admin registering them would: unapproved tools are quarantined, not listed.
            await repo.save_pins([approve(i, "bench", now) for i in mine])
        names = tuple(f"up{u}" for u in range(upstreams))
        await repo.save_server(VirtualServerSpec(name="everything", upstreams=names), create=True)
        policy = Policy(default="deny", rules=(PolicyRule(effect="deny", tools=("up3__*",)), PolicyRule(effect="allow", tools=("*",))))
        await repo.save_server(VirtualServerSpec(name="guarded", upstreams=names, policy=policy), create=True)
        await repo.save_server(VirtualServerSpec(name="found", upstreams=names, discovery="search"), create=True)
    finally:
        await engine.dispose()


def _meta() -> dict[str, Any]:
    return {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}


async def list_modern(http: httpx2.AsyncClient, server: str) -> int:
    headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": MODERN, "mcp-method": "tools/list"}
    count, cursor, n = 0, None, 0
    while True:
        params: dict[str, Any] = {"_meta": _meta()}
        if cursor:
            params["cursor"] = cursor
        n += 1
        reply = await http.post(f"/servers/{server}/mcp", json={"jsonrpc": "2.0", "id": n, "method": "tools/list", "params": params}, headers=headers)
        result = reply.json()["result"]
        count += len(result["tools"])
        cursor = result.get("nextCursor")
        if not cursor:
            return count


async def open_legacy(http: httpx2.AsyncClient, server: str) -> dict[str, str]:
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}
    reply = await http.post(f"/servers/{server}/mcp", json=init, headers=headers)
    session = {**headers, "mcp-session-id": reply.headers["mcp-session-id"], "mcp-protocol-version": LEGACY}
    await http.post(f"/servers/{server}/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
    return session


def _legacy_result(reply: httpx2.Response) -> dict[str, Any]:
    if reply.headers.get("content-type", "").startswith("text/event-stream"):
        for line in reply.text.splitlines():
            if line.startswith("data: "):
                return json.loads(line[6:])["result"]  # type: ignore[no-any-return]
    return reply.json()["result"]  # type: ignore[no-any-return]


async def list_legacy(http: httpx2.AsyncClient, server: str, session: dict[str, str]) -> int:
    count, cursor, n = 0, None, 0
    while True:
        params: dict[str, Any] = {"cursor": cursor} if cursor else {}
        n += 1
        reply = await http.post(f"/servers/{server}/mcp", json={"jsonrpc": "2.0", "id": n, "method": "tools/list", "params": params}, headers=session)
        result = _legacy_result(reply)
        count += len(result["tools"])
        cursor = result.get("nextCursor")
        if not cursor:
            return count


MODERN_HEADERS = {"accept": "application/json, text/event-stream", "mcp-protocol-version": MODERN, "mcp-method": "tools/list"}


async def raw_walk(conn: RawHttp, server: str, headers: dict[str, str], *, modern: bool) -> list[bytes]:
    """Every page of tools/list over one keep-alive connection, as received: no page is decoded (the
    next cursor is read from a page's tail), so the time is the gateway's and the wire's."""
    bodies: list[bytes] = []
    cursor, n = None, 0
    while True:
        params: dict[str, Any] = {"_meta": _meta()} if modern else {}
        if cursor:
            params["cursor"] = cursor
        n += 1
        request = json.dumps({"jsonrpc": "2.0", "id": n, "method": "tools/list", "params": params}).encode()
        status, _, body = await conn.post(f"/servers/{server}/mcp", request, headers)
        if status != 200:
            raise RuntimeError(f"tools/list answered {status}: {body[:200]!r}")
        bodies.append(body)
        cursor = next_cursor(body)
        if cursor is None:
            return bodies


async def raw_legacy_session(conn: RawHttp, server: str) -> dict[str, str]:
    headers = {"accept": "application/json, text/event-stream"}
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}
    _, fields, _ = await conn.post(f"/servers/{server}/mcp", json.dumps(init).encode(), headers)
    session = {**headers, "mcp-session-id": fields["mcp-session-id"], "mcp-protocol-version": LEGACY}
    await conn.post(f"/servers/{server}/mcp", b'{"jsonrpc":"2.0","method":"notifications/initialized"}', session)
    return session


async def raw_search(conn: RawHttp, query: str) -> int:
    """One search_tools call on the `discovery: "search"` server over all 10,000 tools, top 10."""
    arguments = {"query": query, "limit": 10}
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "search_tools", "arguments": arguments, "_meta": _meta()}}
    headers = {**MODERN_HEADERS, "mcp-method": "tools/call", "mcp-name": "search_tools"}
    status, _, body = await conn.post("/servers/found/mcp", json.dumps(request).encode(), headers)
    if status != 200:
        raise RuntimeError(f"search_tools answered {status}: {body[:200]!r}")
    return len(json.loads(body)["result"]["structuredContent"]["tools"])


def decoded_tools(bodies: list[bytes]) -> int:
    return sum(len(json.loads(b)["result"]["tools"]) for b in bodies)


def decoded_tools_gc_off(bodies: list[bytes]) -> int:
    """As fast Python clients decode large documents: no cyclic GC passes over the new objects."""
    gc.disable()
    try:
        return decoded_tools(bodies)
    finally:
        gc.enable()


async def sdk_walk(client: Client) -> int:
    count, cursor = 0, None
    while True:
        result = await client.list_tools(cursor=cursor, cache_mode="bypass")
        count += len(result.tools)
        cursor = result.next_cursor
        if not cursor:
            return count


async def timed(label: str, rounds: int, run: Any, pid: int) -> None:
    """p50/p95 wall time, the gateway's CPU (from /proc, 10 ms ticks) and this process's CPU, per round."""
    times: list[float] = []
    shown = None
    await run()  # warm: the first request may build per-view state
    cpu, own = cpu_seconds(pid), time.process_time()
    for _ in range(rounds):
        started = time.perf_counter()
        shown = await run()
        times.append((time.perf_counter() - started) * 1e3)
    cpu, own = (cpu_seconds(pid) - cpu) / rounds * 1e3, (time.process_time() - own) / rounds * 1e3
    if isinstance(shown, list):
        shown = f"{len(shown)} pages, {sum(map(len, shown)) / 1e6:.2f} MB"
    print(f"{label:<44} {statistics.median(times):8.1f} {pct(times, 0.95):8.1f} {cpu:8.1f} {own:8.1f}  {shown}")


async def measure_raw(base: str, rounds: int, pid: int) -> None:
    """The full listing as a fast client sees it: time to last byte, then its decoding on its own."""
    conn = await RawHttp.open(base, {"authorization": f"Bearer {TOKEN}"})
    try:
        bodies: list[bytes] = []
        for server in ("everything", "guarded"):
            await timed(f"raw TTLB all pages {MODERN} {server}", rounds,
                        lambda s=server: raw_walk(conn, s, MODERN_HEADERS, modern=True), pid)
            session = await raw_legacy_session(conn, server)
            await timed(f"raw TTLB all pages {LEGACY} {server}", rounds,
                        lambda s=server, h=session: raw_walk(conn, s, h, modern=False), pid)
            if not bodies:
                bodies = await raw_walk(conn, server, MODERN_HEADERS, modern=True)
        for query in ("create invoice", "list open issues by id"):
            await timed(f"raw tools/call search_tools {query!r}", rounds, lambda q=query: raw_search(conn, q), pid)
    finally:
        await conn.close()

    async def decode() -> int:
        return decoded_tools(bodies)

    async def decode_gc_off() -> int:
        return decoded_tools_gc_off(bodies)

    await timed("client json.loads of the 20 pages, GC on", rounds, decode, pid)
    await timed("client json.loads of the 20 pages, GC off", rounds, decode_gc_off, pid)


async def measure_sdk(base: str, rounds: int, pid: int) -> None:
    """The SDK's Client (2026-07-28): what a Python MCP client pays, model validation of 10,000 tools included."""
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
    async with Client(streamable_http_client(f"{base}/servers/everything/mcp", http_client=http), mode=MODERN) as client:
        await timed(f"SDK Client list_tools all pages {MODERN}", rounds, lambda: sdk_walk(client), pid)


async def measure(base: str, rounds: int, pid: int) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx2.AsyncClient(base_url=base, timeout=120, headers=auth) as http:
        print(f"{'request':<44} {'p50 ms':>8} {'p95 ms':>8} {'gw cpu':>8} {'own cpu':>8}  items")
        await measure_raw(base, rounds, pid)
        await measure_sdk(base, max(3, rounds // 4), pid)
        for server in ("everything", "guarded"):
            await timed(f"httpx tools/list all pages {MODERN} {server}", rounds, lambda s=server: list_modern(http, s), pid)
            session = await open_legacy(http, server)
            await timed(f"httpx tools/list all pages {LEGACY} {server}", rounds, lambda s=server, h=session: list_legacy(http, s, h), pid)
        for query in SEARCHES:

            async def search(q: str = query) -> int:
                reply = await http.get(f"/api/v1/tools?{q}&limit=50")
                return int(reply.json()["total"])

            await timed(f"GET /api/v1/tools?{query}", rounds, search, pid)

        async def first_page() -> int:
            return len((await http.get("/api/v1/tools?limit=50")).json()["items"])

        await timed("GET /api/v1/tools?limit=50", rounds, first_page, pid)
        for path in ("/api/v1/approvals", "/api/v1/catalog/duplicates", "/v0.1/servers"):

            async def fetch(p: str = path) -> int:
                return (await http.get(p)).status_code

            await timed(f"GET {path}", rounds, fetch, pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstreams", type=int, default=10)
    parser.add_argument("--tools-each", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db, key = f"{tmp}/bench.db", base64.b64encode(os.urandom(32)).decode()
        anyio.run(seed, db, key, args.upstreams, args.tools_each)
        port = free_port()
        env = {**os.environ, "BASTION_DATABASE_URL": f"sqlite+aiosqlite:///{db}", "BASTION_VAULT_KEY": key,
               "BASTION_PORT": str(port), "BASTION_LOG_LEVEL": "WARNING", "BASTION_ADMIN_TOKEN": TOKEN,
               "BASTION_ALLOW_PRIVATE_UPSTREAMS": "true", "BASTION_RECONNECT_BACKOFF": "30", "BASTION_HEALTH_INTERVAL": "3600"}
        wrap = os.environ.get("BENCH_GATEWAY_WRAP", "").split()
        command = [*wrap, sys.executable, "-m", "bastion", "serve"]
        with gateway_process(env, command, port, start_timeout=120) as (base, server):
            settle(base)
            print(f"{args.upstreams} upstreams x {args.tools_each} tools, {args.rounds} rounds each")
            anyio.run(measure, base, args.rounds, server.pid)


if __name__ == "__main__":
    main()
