"""Benchmark: the admin UI with 100 upstreams and 10,000 tools — time to serve each main page (p50, p95)
and its HTML weight. Budget (issue 14): every page under 150 ms p95 and under 150 KB of HTML.

The catalog is written to a fresh SQLite database before `bastion serve` starts (its upstreams point at
a closed port: they show as failing, which the dashboard must render too); pages are fetched with a
signed-in session cookie, one after another, as a browser would.

    python bench/admin_pages.py [--upstreams 100] [--tools-each 100] [--rounds 30]
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import anyio
import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_overhead import free_port

from bastion.core.models import CatalogItem, Upstream, UpstreamSpec, UpstreamState, VirtualServerSpec
from bastion.core.pinning import approve
from bastion.store.sql.migrate import upgrade
from bastion.store.sql.repo import SqlConfigRepo, make_engine
from bastion.vault.envelope import Envelope
from bastion.vault.keys import load_key_ring

EMAIL, PASSWORD = "bench@example.com", "bench password 0123456789"
PAGES = (
    ("dashboard", "/admin"),
    ("upstreams", "/admin/upstreams"),
    ("upstream", "/admin/upstreams/up-0042"),
    ("catalog", "/admin/catalog?kind=tools"),
    ("catalog search", "/admin/catalog?kind=tools&q=tool-0042"),
    ("catalog page 150", "/admin/catalog?kind=tools&page=150"),
    ("tool", "/admin/catalog/tools/up-0042__tool-0042-0042"),
    ("servers", "/admin/servers"),
    ("server", "/admin/servers/everything"),
    ("server form", "/admin/servers/everything/edit"),
    ("picker search", "/admin/picker?kind=tools&q=0042"),
    ("tokens", "/admin/tokens"),
)


async def seed(db: str, vault_key: str, upstreams: int, each: int) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{db}", 5)
    try:
        await upgrade(engine)
        ring = load_key_ring(key=vault_key, key_file=Path(db + ".key"), previous=[], may_generate=False)
        repo = SqlConfigRepo(engine, Envelope(ring))
        schema = {"type": "object", "properties": {"query": {"type": "string", "description": "What to look for"},
                                                   "limit": {"type": "integer"}}, "required": ["query"]}
        for u in range(upstreams):
            name = f"up-{u:04d}"
            spec = UpstreamSpec(name=name, transport="streamable-http", url="http://127.0.0.1:9/mcp", visibility="public")
            items = [
                CatalogItem(upstream=name, kind="tool", key=f"tool-{u:04d}-{t:04d}", gateway_name=f"{name}__tool-{u:04d}-{t:04d}",
                            definition={"name": f"tool-{u:04d}-{t:04d}", "description": f"Tool {t} of upstream {u}: "
                                        "searches the records of a system and returns what matches.", "inputSchema": schema})
                for t in range(each)
            ]
            await repo.create_upstream(Upstream(spec=spec, state=UpstreamState(status="healthy")), items)
            # Approved, as an admin registering them would (unapproved tools wait in the approvals page).
            await repo.save_pins([approve(i, "bench", datetime.now(UTC)) for i in items])
        everything = VirtualServerSpec(name="everything", upstreams=tuple(f"up-{u:04d}" for u in range(upstreams)))
        await repo.save_server(everything, create=True)
    finally:
        await engine.dispose()


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def measure(base: str, rounds: int) -> None:
    async with httpx2.AsyncClient(base_url=base, timeout=60) as http:
        signed = await http.post("/admin/login", data={"email": EMAIL, "password": PASSWORD, "next": "/admin"})
        cookie = signed.cookies.get("bastion_ui")
        assert cookie, f"sign-in failed: {signed.status_code}"
        http.cookies.set("bastion_ui", cookie, path="/admin")
        print(f"{'page':<18} {'p50 ms':>8} {'p95 ms':>8} {'KB':>7}  status")
        for label, path in PAGES:
            times: list[float] = []
            size, status = 0, 0
            for _ in range(rounds):
                started = time.perf_counter()
                response = await http.get(path)
                times.append((time.perf_counter() - started) * 1e3)
                size, status = len(response.content), response.status_code
            print(f"{label:<18} {statistics.median(times):8.1f} {pct(times, 0.95):8.1f} {size / 1024:7.1f}  {status}")


@contextmanager
def gateway_process(
    env: dict[str, str], command: list[str], port: int, *, start_timeout: float
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`bastion serve` in a process of its own, until /healthz answers; stopped (SIGTERM) afterwards."""
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                if httpx2.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("bastion did not start")
            time.sleep(0.2)
        yield base, server
    finally:
        server.terminate()
        server.wait(timeout=30)


def settle(base: str) -> None:
    """Wait until the start-up connection attempts (one per upstream) are over: the gateway's CPU goes quiet."""
    started = time.monotonic()
    previous = None
    while time.monotonic() - started < 300:
        time.sleep(2)
        stamp = httpx2.get(f"{base}/healthz", timeout=30).elapsed.total_seconds()
        if previous is not None and stamp < 0.01 and previous < 0.01:
            break
        previous = stamp
    print(f"start-up settled after {time.monotonic() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstreams", type=int, default=100)
    parser.add_argument("--tools-each", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db, key = f"{tmp}/bench.db", base64.b64encode(os.urandom(32)).decode()
        anyio.run(seed, db, key, args.upstreams, args.tools_each)
        port = free_port()
        env = {**os.environ, "BASTION_DATABASE_URL": f"sqlite+aiosqlite:///{db}", "BASTION_VAULT_KEY": key,
               "BASTION_PORT": str(port), "BASTION_LOG_LEVEL": "WARNING", "BASTION_ADMIN_EMAIL": EMAIL,
               "BASTION_ADMIN_PASSWORD": PASSWORD, "BASTION_ALLOW_PRIVATE_UPSTREAMS": "true",
               "BASTION_RECONNECT_BACKOFF": "30", "BASTION_HEALTH_INTERVAL": "3600"}
        with gateway_process(env, [sys.executable, "-m", "bastion", "serve"], port, start_timeout=60) as (base, _):
            settle(base)
            print(f"{args.upstreams} upstreams x {args.tools_each} tools, {args.rounds} rounds per page")
            anyio.run(measure, base, args.rounds)


if __name__ == "__main__":
    main()
