"""Test harness: a real Bastion on a real loopback port, real upstream processes, real clients."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import shlex
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import uvicorn
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from bastion.app import Bastion, running
from bastion.config import Settings
from bastion.web.listen import listening_socket

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "upstreams" / "fixture_server.py"
EVERYTHING = ROOT / "tools" / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
TOKEN = "bst_test-admin-token-0123456789"
VAULT_KEY = "dGVzdC12YXVsdC1rZXktMDEyMzQ1Njc4OWFiY2RlZjA="  # base64 of 32 bytes, tests only
STATE_KEY = "dGVzdC1zdGF0ZS1rZXktMDEyMzQ1Njc4OWFiY2RlZjA="  # base64 of 32 bytes, tests only
PG_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def stdio_fixture(name: str) -> dict[str, Any]:
    """Registration body for the fixture upstream as a stdio child process."""
    return {"name": name, "transport": "stdio", "command": sys.executable, "args": [str(FIXTURE), "--transport", "stdio"]}


@dataclass
class HttpUpstream:
    process: subprocess.Popen[str]
    port: int
    transport: str

    @property
    def url(self) -> str:
        path = "/mcp" if self.transport == "streamable-http" else "/sse"
        return f"http://127.0.0.1:{self.port}{path}"

    def body(self, name: str) -> dict[str, Any]:
        return {"name": name, "transport": self.transport, "url": self.url}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def http_fixture(transport: str = "streamable-http", *extra: str) -> Iterator[HttpUpstream]:
    """Start the fixture upstream over HTTP on a free loopback port; stop it afterwards."""
    proc = subprocess.Popen(
        [sys.executable, str(FIXTURE), "--transport", transport, "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"fixture upstream did not start: {line!r}")
    upstream = HttpUpstream(proc, int(line.split()[1]), transport)
    try:
        yield upstream
    finally:
        upstream.stop()


@dataclass
class Running:
    """A Bastion serving on loopback, with an authenticated REST client."""

    bastion: Bastion
    base_url: str
    api: httpx2.AsyncClient

    def mcp_url(self, server: str) -> str:
        return f"{self.base_url}/servers/{server}/mcp"

    async def register(self, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.api.post("/api/v1/upstreams", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    async def create_server(self, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.api.post("/api/v1/servers", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    @asynccontextmanager
    async def client(
        self, server: str, mode: str = "legacy", transport: str = "streamable-http", token: str = TOKEN, **kwargs: Any
    ) -> AsyncIterator[Client]:
        """An SDK Client connected to a virtual server through Bastion (as the admin, unless `token`)."""
        headers = {"Authorization": f"Bearer {token}"}
        if transport == "sse":
            streams = sse_client(f"{self.base_url}/servers/{server}/sse", headers=headers)
        else:
            http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=None))
            streams = streamable_http_client(self.mcp_url(server), http_client=http)
        async with Client(streams, mode=mode, **kwargs) as client:
            yield client


def settings_for(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "admin_token": TOKEN,
        "vault_key": VAULT_KEY,
        "state_key": STATE_KEY,  # as an operator must set it on a shared database (BASTION_TEST_DATABASE=postgres)
        "connect_timeout": 10.0,
        "call_timeout": 20.0,
        "health_interval": 3600.0,
        "reconnect_backoff": 0.2,
        "port": 0,
        "allow_private_upstreams": True,  # every test upstream is on loopback
        # As an admin would allow it: developers may run the fixture upstream (tests/attacks/test_host_exec.py).
        "stdio_commands": (shlex.join([sys.executable, *stdio_fixture("x")["args"]]),),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def serve_asgi(app: Any, port: int = 0, host: str = "127.0.0.1", lifespan: str = "off") -> AsyncIterator[str]:
    """Serve an ASGI app (no lifespan unless asked) on a loopback address (any of 127.0.0.0/8), on `port`
    or a free one, in this event loop; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, lifespan=lifespan, log_level="warning"))  # type: ignore[arg-type]
    sock = listening_socket(host, port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        with anyio.fail_after(10):
            while not server.started:
                await anyio.sleep(0.01)  # uvicorn sets a flag, not an event
        try:
            yield f"http://{host}:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True


TEST_DATABASE = os.environ.get("BASTION_TEST_DATABASE", "sqlite")
"""`postgres` runs every test that serves Bastion on the real PostgreSQL instead of its SQLite file
(.ci/run runs the suite both ways)."""
_postgres_for: dict[str, str] = {}
_created: list[str] = []
keep_sqlite = False
"""Set for tests marked `sqlite`: they exercise the SQLite file itself, so stay on it in either mode."""


async def _database_for(url: str) -> str:
    """In PostgreSQL mode, a test's SQLite URL becomes a fresh PostgreSQL database of its own (the
    same one each time the test serves that URL again, as a restart would)."""
    if TEST_DATABASE != "postgres" or keep_sqlite or not url.startswith("sqlite"):
        return url
    if url not in _postgres_for:
        import asyncpg

        name = f"bastion_test_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(PG_SERVER)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        _created.append(name)
        _postgres_for[url] = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    return _postgres_for[url]


def drop_test_databases() -> None:
    """Drop the databases PostgreSQL mode created (called between test modules)."""
    if not _created:
        return
    import asyncpg

    async def drop(names: list[str]) -> None:
        admin = await asyncpg.connect(PG_SERVER)
        try:
            for name in names:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(drop(list(_created)))
    _created.clear()
    _postgres_for.clear()


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Running]:
    """Run Bastion with `settings` on a free loopback port."""
    database = await _database_for(settings.database_url)
    if database != settings.database_url:
        settings = settings.model_copy(update={"database_url": database})
    async with running(settings) as bastion, serve_asgi(bastion.app, settings.port) as base:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx2.AsyncClient(base_url=base, headers=headers, timeout=60) as api:
            yield Running(bastion, base, api)


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import asyncpg

    name = f"bastion_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_SERVER)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


_PORT_BLOCK = 2000
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_next_port = itertools.count(random.randrange(_PORT_BLOCK))


def free_port() -> int:
    """A loopback port free right now, for a process that binds it a moment later (a Bastion that
    must know its own URL, a replica, a Redis). Nothing reserves it meanwhile, so it is taken below
    Linux's ephemeral range (32768 up: no outgoing connection gets it), in a block of this pytest
    worker's own (no other worker picks it), and in turn (not again for 2,000 picks)."""
    base = 20000 + (_WORKER % 6) * _PORT_BLOCK
    for _ in range(_PORT_BLOCK):
        port = base + next(_next_port) % _PORT_BLOCK
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {base}..{base + _PORT_BLOCK - 1}")


def node_available() -> bool:
    return EVERYTHING.exists() and os.access(sys.executable, os.X_OK)


def session_headers(session_id: str | None = None, token: str | None = TOKEN) -> dict[str, str]:
    """The headers of a raw 2025-11-25 streamable HTTP request (and of the session `session_id`)."""
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if session_id is not None:
        headers |= {"Mcp-Session-Id": session_id, "Mcp-Protocol-Version": "2025-11-25"}
    return headers


async def open_raw_session(
    http: httpx2.AsyncClient, url: str, *, token: str | None = TOKEN, capabilities: dict[str, Any] | None = None
) -> str:
    """A 2025-11-25 session opened by hand (initialize, then notifications/initialized); its id."""
    params = {"protocolVersion": "2025-11-25", "capabilities": capabilities or {}, "clientInfo": {"name": "t", "version": "1"}}
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}
    opened = await http.post(url, headers=session_headers(token=token), json=initialize)
    assert opened.status_code == 200, opened.text
    session_id = opened.headers["mcp-session-id"]
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await http.post(url, headers=session_headers(session_id, token), json=initialized)).status_code == 202
    return session_id
