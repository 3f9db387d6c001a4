"""Several real `bastion serve` processes sharing one PostgreSQL database and one Redis."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import redis

from tests.harness import TOKEN, VAULT_KEY, free_port, postgres_database

REDIS_URL = "redis://127.0.0.1:6379/0"
MODERN = "2026-07-28"


@dataclass
class Replica:
    process: subprocess.Popen[bytes]
    port: int
    api: httpx2.AsyncClient

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (the lease is not handed back)."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    async def cluster_info(self) -> dict[str, Any]:
        response = await self.api.get("/api/v1/cluster")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def call_tool(self, server: str, tool: str, arguments: dict[str, Any], token: str = TOKEN) -> dict[str, Any]:
        """One stateless 2026-07-28 tools/call over plain HTTP; the JSON-RPC reply."""
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {
                "name": tool,
                "arguments": arguments,
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": MODERN,
                    "io.modelcontextprotocol/clientCapabilities": {},
                },
            },
        }
        headers = {
            "authorization": f"Bearer {token}",
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": MODERN,
            "mcp-method": "tools/call",
            "mcp-name": tool,
        }
        response = await self.api.post(f"/servers/{server}/mcp", json=body, headers=headers)
        assert response.headers["content-type"].startswith("application/json"), response.text
        return dict(response.json())


def _env(database_url: str, redis_url: str, prefix: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    return {
        **env,
        "BASTION_DATABASE_URL": database_url,
        "BASTION_REDIS_URL": redis_url,
        "BASTION_REDIS_PREFIX": prefix,
        "BASTION_ADMIN_TOKEN": TOKEN,
        "BASTION_HEALTH_INTERVAL": "3600",
        "BASTION_SHUTDOWN_GRACE": "2",
        "BASTION_LOG_LEVEL": "WARNING",
        "BASTION_ALLOW_PRIVATE_UPSTREAMS": "true",
        **extra,
    }


async def _wait_ready(replica: Replica) -> None:
    with anyio.fail_after(60):
        while True:
            if replica.process.poll() is not None:
                raise RuntimeError(f"replica on port {replica.port} exited with {replica.process.returncode}")
            try:
                if (await replica.api.get("/readyz")).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            await anyio.sleep(0.1)  # no event says a child process is listening


@asynccontextmanager
async def replicas(
    count: int,
    workdir: Path,
    *,
    redis_url: str = REDIS_URL,
    one_public_url: bool = False,
    root_key: str | None = None,
    **settings: str,
) -> AsyncIterator[list[Replica]]:
    """`count` replicas on a fresh PostgreSQL database and a fresh Redis key prefix; all stopped after.
    `one_public_url`: every replica's public URL is the first one's, as behind one load balancer (so
    OAuth tokens name one issuer and audience whichever replica checks them). `root_key`: the
    replicas get only BASTION_ROOT_KEY, no state or vault key."""
    prefix = f"bastion-test-{uuid.uuid4().hex[:10]}"
    # One state key for the cluster, as an operator sets it: a legacy session's record (and its
    # events) opened on one replica must open on the others.
    keys = (
        {"BASTION_ROOT_KEY": root_key}
        if root_key is not None
        else {"BASTION_STATE_KEY": base64.b64encode(os.urandom(32)).decode(), "BASTION_VAULT_KEY": VAULT_KEY}
    )
    extra = {**keys, **{f"BASTION_{k.upper()}": v for k, v in settings.items()}}
    ports = [free_port() for _ in range(count)]
    if one_public_url:
        extra["BASTION_PUBLIC_URL"] = f"http://127.0.0.1:{ports[0]}"
    started: list[Replica] = []
    async with postgres_database() as database_url:
        try:
            for index, port in enumerate(ports):
                log = open(workdir / f"replica{index + 1}.log", "wb")
                process = subprocess.Popen(
                    [sys.executable, "-m", "bastion", "serve", "--port", str(port)],
                    env=_env(database_url, redis_url, prefix, extra),
                    cwd=workdir,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                log.close()
                headers = {"Authorization": f"Bearer {TOKEN}"}
                api = httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30)
                started.append(Replica(process, port, api))
            for replica in started:
                await _wait_ready(replica)
            yield started
        finally:
            for replica in started:
                if replica.process.poll() is None:
                    replica.process.terminate()
            for replica in started:
                try:
                    replica.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    replica.process.kill()
                    replica.process.wait()
                await replica.api.aclose()
            _drop_keys(redis_url, prefix)


def _drop_keys(redis_url: str, prefix: str) -> None:
    try:
        client = redis.Redis.from_url(redis_url, socket_timeout=2)
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()
    except redis.RedisError:
        pass  # a private Redis that is gone already


@contextmanager
def private_redis(workdir: Path) -> Iterator[tuple[str, Callable[[], None], Callable[[], Awaitable[None]]]]:
    """A redis-server of our own on a free port (so stopping it disturbs no other test):
    its URL, stop(), and an async start() that returns once it answers."""
    port = free_port()
    holder: dict[str, subprocess.Popen[bytes]] = {}

    def stop() -> None:
        process = holder.pop("process", None)
        if process is not None:
            process.terminate()
            process.wait(timeout=10)

    async def start() -> None:
        holder["process"] = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
        try:
            with anyio.fail_after(15):
                while True:
                    try:
                        if client.ping():
                            return
                    except redis.ConnectionError:
                        await anyio.sleep(0.05)  # no event says redis-server is listening
        finally:
            client.close()

    try:
        yield f"redis://127.0.0.1:{port}/0", stop, start
    finally:
        stop()
