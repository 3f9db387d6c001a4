"""Benchmark: a large catalog end to end — a full tools/list of one virtual server (every page), in both
eras, and the REST catalog search, with and without a policy on the server (issue 12). Budget: a full
list of 10,000 tools under 50 ms, a search under 10 ms.

The catalog (bench/catalog_gen.py: 10 upstreams x 1,000 plausible tools) is written to a fresh SQLite
database before `bastion serve` starts, as bench/admin_pages.py does (its upstreams point at a closed
port). Two virtual servers include every upstream: `everything`, and `guarded` whose policy hides one
upstream's tools from the caller (a caller-filtered view). Requests are plain JSON-RPC over HTTP
(httpx): 2026-07-28 stateless POSTs, and a 2025-11-25 session (initialize, then list), timed from the
first request to the last page's body; the client does not model-validate the 10,000 tools.

    python bench/catalog_scale.py [--upstreams 10] [--tools-each 1000] [--rounds 30]
"""

from __future__ import annotations

import argparse
import base64
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from admin_pages import gateway_process, pct, settle
from catalog_gen import catalog
from proxy_overhead import cpu_seconds, free_port

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


async def seed(db: str, vault_key: str, upstreams: int, each: int) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{db}", 5)
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


async def timed(label: str, rounds: int, run: Any, pid: int) -> None:
    times: list[float] = []
    shown = None
    await run()  # warm: the first request may build per-view state
    cpu = cpu_seconds(pid)
    for _ in range(rounds):
        started = time.perf_counter()
        shown = await run()
        times.append((time.perf_counter() - started) * 1e3)
    cpu = (cpu_seconds(pid) - cpu) / rounds * 1e3
    print(f"{label:<40} {statistics.median(times):8.1f} {pct(times, 0.95):8.1f} {cpu:8.1f}  {shown}")


async def measure(base: str, rounds: int, pid: int) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx2.AsyncClient(base_url=base, timeout=120, headers=auth) as http:
        print(f"{'request':<40} {'p50 ms':>8} {'p95 ms':>8} {'gw cpu':>8}  items")
        for server in ("everything", "guarded"):
            await timed(f"tools/list all pages {MODERN} {server}", rounds, lambda s=server: list_modern(http, s), pid)
            session = await open_legacy(http, server)
            await timed(f"tools/list all pages {LEGACY} {server}", rounds, lambda s=server, h=session: list_legacy(http, s, h), pid)
        # The client's share: decoding the same pages' JSON, with no request at all.
        bodies: list[bytes] = []
        headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": MODERN, "mcp-method": "tools/list"}
        cursor = None
        while True:
            params: dict[str, Any] = {"_meta": _meta(), **({"cursor": cursor} if cursor else {})}
            reply = await http.post("/servers/everything/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": params}, headers=headers)
            bodies.append(reply.content)
            cursor = reply.json()["result"].get("nextCursor")
            if not cursor:
                break

        async def decode_only() -> str:
            return f"{sum(len(json.loads(b)['result']['tools']) for b in bodies)} ({sum(map(len, bodies)) / 1e6:.1f} MB)"

        await timed("client JSON decode of those pages only", rounds, decode_only, pid)
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
