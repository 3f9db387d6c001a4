"""Attack class: slow clients holding connections (issue 9, finding 15b, slowloris). `bastion serve`
closes a connection whose request line and headers, or whose body, do not arrive in time."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import httpx2
import pytest

from tests.harness import TOKEN, VAULT_KEY
from tests.replicas.cluster import free_port

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real `bastion serve` process with short read timeouts; yields its port."""
    tmp: Path = tmp_path_factory.mktemp("slow")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BASTION_")},
        "BASTION_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/b.db",
        "BASTION_ADMIN_TOKEN": TOKEN,
        "BASTION_VAULT_KEY": VAULT_KEY,
        "BASTION_HEADER_TIMEOUT": "1",
        "BASTION_BODY_TIMEOUT": "2",
    }
    with open(tmp / "serve.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bastion", "serve", "--port", str(port)], env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        for _ in range(600):
            try:
                if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if process.poll() is not None:
                raise RuntimeError((tmp / "serve.log").read_text())
            anyio.run(anyio.sleep, 0.05)  # polling a child process for readiness: no event to wait on
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _closed_by_server(port: int, sent: bytes) -> bytes:
    """Send `sent`, then wait (bounded) until the server closes the connection; what it answered."""
    def talk() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(sent)
            received = b""
            while chunk := sock.recv(4096):
                received += chunk
            return received

    with anyio.fail_after(20):  # far longer than the timeouts: a connection held open fails here
        return await anyio.to_thread.run_sync(talk, abandon_on_cancel=True)


async def test_a_connection_that_never_finishes_its_headers_is_closed(served: int) -> None:
    await _closed_by_server(served, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")


async def test_a_connection_that_sends_nothing_is_closed(served: int) -> None:
    await _closed_by_server(served, b"")


async def test_a_body_that_never_arrives_is_closed(served: int) -> None:
    head = (
        b"POST /api/v1/teams HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 1000\r\n\r\n{\"name\": "
    )
    answer = await _closed_by_server(served, head)
    assert b" 201 " not in answer


async def test_ordinary_requests_still_work(served: int) -> None:
    async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{served}", timeout=30) as http:
        assert (await http.post("/api/v1/teams", json={"name": "t1"}, headers={"authorization": f"Bearer {TOKEN}"})).status_code == 201


async def test_headers_past_the_size_limit_are_refused_with_431(served: int) -> None:
    # httptools buffers a request's headers whole, so one client could make Bastion hold hundreds of
    # megabytes before authentication. One huge header, never finished, and many small ones:
    one_huge = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (2 << 20)
    assert b" 431 " in await _closed_by_server(served, one_huge)
    many = b"".join(b"X-%d: %s\r\n" % (i, b"a" * 100) for i in range(2000))
    assert b" 431 " in await _closed_by_server(served, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + many + b"\r\n")


async def test_a_large_body_after_small_headers_is_not_counted_as_headers(served: int) -> None:
    body = b'{"name": "t-large"' + b" " * (1 << 20) + b"}"
    async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{served}", timeout=30) as http:
        headers = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
        assert (await http.post("/api/v1/teams", content=body, headers=headers)).status_code == 201
        # and the same connection goes on serving requests with ordinary headers
        assert (await http.get("/api/v1/teams", headers=headers)).status_code == 200
