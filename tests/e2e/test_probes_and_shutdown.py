"""Load-balancer probes, and a replica that is told to stop (SIGTERM) finishing what it started."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import httpx2
import pytest

from tests.harness import TOKEN, Running, free_port, serve, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio


async def test_probes_answer_without_a_token(gateway: Running) -> None:
    async with httpx2.AsyncClient(base_url=gateway.base_url) as anonymous:
        assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
        ready = await anonymous.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"


@pytest.mark.sqlite
async def test_not_ready_when_the_schema_is_not_current(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    async with serve(settings_for(f"sqlite+aiosqlite:///{db}")) as gateway:
        with sqlite3.connect(db) as conn:  # as if an older build had migrated this database
            conn.execute("UPDATE alembic_version SET version_num = 'older'")
        async with httpx2.AsyncClient(base_url=gateway.base_url) as anonymous:
            ready = await anonymous.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["problems"] == ["database schema is not at the newest migration"]


@pytest.mark.timeout(300)  # the child's start alone may take the default 120 s on a loaded machine
async def test_sigterm_lets_the_call_in_flight_finish_then_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "BASTION_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/b.db",
        "BASTION_ALLOW_PRIVATE_UPSTREAMS": "true",
        "BASTION_ADMIN_TOKEN": TOKEN,
        "BASTION_VAULT_KEY_FILE": f"{tmp_path}/vault.key",  # not ./bastion.vault.key in the checkout
        "BASTION_SHUTDOWN_GRACE": "20",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bastion", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with httpx2.AsyncClient(base_url=base, headers=headers, timeout=30) as api:
            # A hang guard: the child's start (imports, migrations) took 24 s with 16 busy processes on 2 cores.
            with anyio.fail_after(120):
                while True:
                    try:
                        if (await api.get("/healthz")).status_code == 200:
                            break
                    except httpx2.TransportError:
                        await anyio.sleep(0.1)  # no event says the child is listening
            assert (await api.post("/api/v1/upstreams", json=stdio_fixture("fx"))).status_code == 201
            assert (await api.post("/api/v1/servers", json={"name": "vs", "upstreams": ["fx"]})).status_code == 201
            call = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {
                    "name": "fx__slow",
                    "arguments": {"seconds": 1.5},
                    "_meta": {
                        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                        "io.modelcontextprotocol/clientCapabilities": {},
                    },
                },
            }
            call_headers = {
                "accept": "application/json, text/event-stream",
                "mcp-protocol-version": "2026-07-28",
                "mcp-method": "tools/call",
                "mcp-name": "fx__slow",
            }
            pid_reply = await api.post(
                "/servers/vs/mcp",
                json={**call, "params": {**call["params"], "name": "fx__pid", "arguments": {}}},
                headers={**call_headers, "mcp-name": "fx__pid"},
            )
            child = int(pid_reply.json()["result"]["content"][0]["text"])
            answer: dict[str, httpx2.Response] = {}

            async def slow_call() -> None:
                answer["reply"] = await api.post("/servers/vs/mcp", json=call, headers=call_headers)

            async with anyio.create_task_group() as tg:
                tg.start_soon(slow_call)
                await anyio.sleep(0.5)  # let the call reach the upstream before the signal
                proc.send_signal(signal.SIGTERM)
            reply = answer["reply"]
            assert reply.status_code == 200, reply.text
            assert reply.json()["result"]["content"][0]["text"] == "done"
        with anyio.fail_after(25):
            while proc.poll() is None:
                await anyio.sleep(0.1)
        # uvicorn re-raises the signal once it has shut down cleanly, as process managers expect.
        assert proc.returncode in (0, -signal.SIGTERM)
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)  # the stdio upstream went with it
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
