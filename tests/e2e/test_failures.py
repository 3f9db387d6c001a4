"""Failure behaviour end to end: crashes, dead upstreams, deadlines, bad input, concurrency, isolation, stop.

Real Bastion, real upstream processes and sockets; no mocks.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import MCPError

from bastion.core.errors import UpstreamTimeout, UpstreamUnavailable
from tests.harness import Running, free_port, http_fixture, serve, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-value"
UNAVAILABLE = UpstreamUnavailable.jsonrpc_code  # -32011
TIMEOUT = UpstreamTimeout.jsonrpc_code  # -32013
ERAS = ["legacy", "2026-07-28"]


# -- helpers ---------------------------------------------------------------------------------


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/bastion.db"


def pid_of(result: Any) -> int:
    assert not result.is_error, result
    return int(result.content[0].text)


def raw_pid(result: dict[str, Any]) -> int:
    assert not result.get("isError"), result
    return int(result["content"][0]["text"])


def assert_problem(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert SECRET not in response.text
    return body


async def saved_upstreams(gateway: Running) -> list[str]:
    response = await gateway.api.get("/api/v1/upstreams")
    assert response.status_code == 200, response.text
    return [u["name"] for u in response.json()["items"]]


async def with_fx_server(gateway: Running, body: dict[str, Any] | None = None) -> None:
    await gateway.register(body or stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "upstreams": ["fx"]})


def processes_with(marker: str) -> list[int]:
    """Pids of live (non-zombie) processes whose command line contains `marker` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


async def assert_no_process_with(marker: str) -> None:
    with anyio.fail_after(5):
        while processes_with(marker):
            await anyio.sleep(0.05)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
async def quick_gateway(tmp_path: Path) -> AsyncIterator[Running]:
    """Bastion with short deadlines, for tests that wait on timeouts."""
    settings = settings_for(sqlite_url(tmp_path), call_timeout=1.5, connect_timeout=3, reconnect_backoff=0.1)
    async with serve(settings) as running:
        yield running


# -- 1. crash and restart ------------------------------------------------------------------


async def test_crashed_stdio_upstream_fails_the_call_and_is_restarted(
    gateway: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bastion.upstream")
    await with_fx_server(gateway)
    async with gateway.client("vs") as client:
        first = pid_of(await client.call_tool("fx__pid", {}))

        with anyio.fail_after(10):
            try:
                crashed = await client.call_tool("fx__crash", {})
            except MCPError as exc:
                assert exc.code == UNAVAILABLE, exc
                assert "fx" in exc.message
            else:
                assert crashed.is_error

        with anyio.fail_after(15):
            while True:
                try:
                    second = pid_of(await client.call_tool("fx__pid", {}))
                    break
                except MCPError as exc:
                    assert exc.code == UNAVAILABLE, exc
                    await anyio.sleep(0.05)
        assert second != first
        assert not process_alive(first)
        assert (await client.call_tool("fx__echo", {"text": "back"})).content[0].text == "back"

    upstream_records = [r for r in caplog.records if r.name == "bastion.upstream"]
    assert any(
        r.levelno >= logging.WARNING and "fx" in r.getMessage() and "reconnect" in r.getMessage()
        for r in upstream_records
    ), [r.getMessage() for r in upstream_records]
    # The child's stderr reaches our log through a reader thread: wait for both starts to show up.
    with anyio.fail_after(5):
        while sum(r.getMessage() == "[fx] fixture upstream starting" for r in caplog.records) < 2:
            await anyio.sleep(0.05)


async def test_calls_in_flight_when_a_stdio_upstream_crashes_fail_instead_of_hanging(gateway: Running) -> None:
    await with_fx_server(gateway)
    async with gateway.client("vs") as client:
        codes: list[int] = []

        async def slow() -> None:
            with pytest.raises(MCPError) as caught:
                await client.call_tool("fx__slow", {"seconds": 30})
            codes.append(caught.value.code)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    tg.start_soon(slow)
                # No event tells us the four requests reached the upstream: poll the connection's
                # count of requests awaiting a reply.
                conn = gateway.bastion.pool.connection("fx")
                assert conn is not None and conn.client is not None
                while conn.answers_awaited < 4:
                    await anyio.sleep(0.02)
                with pytest.raises(MCPError) as crashed:
                    await client.call_tool("fx__crash", {})
                assert crashed.value.code == UNAVAILABLE
        assert codes == [UNAVAILABLE] * 4


# -- 2. upstream down ----------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_registering_an_unreachable_http_upstream_is_a_502_and_saves_nothing(
    quick_gateway: Running, transport: str
) -> None:
    path = "/mcp" if transport == "streamable-http" else "/sse"
    down = free_port()  # nobody listens there
    body = {"name": "down", "transport": transport, "url": f"http://127.0.0.1:{down}{path}"}
    with anyio.fail_after(10):
        response = await quick_gateway.api.post("/api/v1/upstreams", json=body)
    problem = assert_problem(response, 502)
    assert "could not connect" in problem["detail"]
    assert "down" in problem["detail"]
    assert await saved_upstreams(quick_gateway) == []
    missing = await quick_gateway.api.get("/api/v1/upstreams/down")
    assert_problem(missing, 404)


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_call_to_a_stopped_http_upstream_errors_quickly_and_health_marks_it_unhealthy(
    quick_gateway: Running, transport: str
) -> None:
    call_timeout = quick_gateway.bastion.settings.call_timeout
    with http_fixture(transport) as upstream:
        await with_fx_server(quick_gateway, upstream.body("fx"))
        async with quick_gateway.client("vs") as client:
            assert (await client.call_tool("fx__echo", {"text": "up"})).content[0].text == "up"
            upstream.stop()
            with anyio.fail_after(call_timeout + 5):
                with pytest.raises(MCPError) as caught:
                    await client.call_tool("fx__echo", {"text": "down"})
            assert caught.value.code in (UNAVAILABLE, TIMEOUT), caught.value
            assert "fx" in caught.value.message

        with anyio.fail_after(15):
            await quick_gateway.bastion.gateway.check_health()
        response = await quick_gateway.api.get("/api/v1/upstreams/fx")
        assert response.status_code == 200, response.text
        shown = response.json()
        assert shown["status"] == "unhealthy"
        assert shown["status_reason"]


# -- 3. deadline ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ERAS)
async def test_slow_upstream_call_hits_the_deadline_and_the_next_call_works(
    quick_gateway: Running, mode: str
) -> None:
    await with_fx_server(quick_gateway)
    async with quick_gateway.client("vs", mode=mode) as client:
        with anyio.fail_after(5):
            with pytest.raises(MCPError) as caught:
                await client.call_tool("fx__slow", {"seconds": 10})
        assert caught.value.code == TIMEOUT, caught.value
        assert "fx" in caught.value.message
        with anyio.fail_after(5):
            result = await client.call_tool("fx__echo", {"text": "still here"})
        assert result.content[0].text == "still here"


# -- 4. bad registration input -------------------------------------------------------------

_STDIO = stdio_fixture("ok")
_BAD_INPUT: dict[str, tuple[Any, int]] = {
    "name-with-underscore-and-capital": ({**_STDIO, "name": "Bad_Name", "env": {"API_KEY": SECRET}}, 400),
    "name-starting-with-hyphen": ({**_STDIO, "name": "-x", "env": {"API_KEY": SECRET}}, 400),
    "empty-name": ({**_STDIO, "name": "", "env": {"API_KEY": SECRET}}, 400),
    "name-of-64-chars": ({**_STDIO, "name": "a" * 64, "env": {"API_KEY": SECRET}}, 400),
    "unknown-transport": ({"name": "ok", "transport": "carrier-pigeon", "url": "http://127.0.0.1:1/"}, 400),
    "stdio-without-command": ({"name": "ok", "transport": "stdio", "env": {"API_KEY": SECRET}}, 400),
    "http-without-url": ({"name": "ok", "transport": "streamable-http", "headers": {"X-Secret": SECRET}}, 400),
    "ftp-url": ({"name": "ok", "transport": "streamable-http", "url": "ftp://x", "headers": {"X-Secret": SECRET}}, 400),
    "url-with-credentials": (
        {"name": "ok", "transport": "streamable-http", "url": f"http://user:{SECRET}@127.0.0.1:1/mcp"},
        400,
    ),
    "unknown-field": ({**_STDIO, "colour": "blue", "env": {"API_KEY": SECRET}}, 400),
    "stdio-with-headers": ({**_STDIO, "headers": {"X-Secret": SECRET}}, 400),
    "json-array-body": ([_STDIO], 400),
}


@pytest.mark.parametrize("body,status", list(_BAD_INPUT.values()), ids=list(_BAD_INPUT))
async def test_invalid_registration_is_a_problem_and_saves_nothing(gateway: Running, body: Any, status: int) -> None:
    response = await gateway.api.post("/api/v1/upstreams", json=body)
    assert_problem(response, status)
    assert await saved_upstreams(gateway) == []


@pytest.mark.parametrize("content", [b"{not json", b"", "\u00e9".encode("latin-1")], ids=["broken", "empty", "not-utf8"])
async def test_registration_body_that_is_not_json_is_a_400(gateway: Running, content: bytes) -> None:
    response = await gateway.api.post(
        "/api/v1/upstreams", content=content, headers={"content-type": "application/json"}
    )
    assert_problem(response, 400)
    assert await saved_upstreams(gateway) == []


async def test_credentials_in_a_rejected_url_are_not_echoed(gateway: Running) -> None:
    body = {"name": "ok", "transport": "streamable-http", "url": f"ftp://user:{SECRET}@example.org/"}
    response = await gateway.api.post("/api/v1/upstreams", json=body)
    assert_problem(response, 400)


async def test_registering_a_missing_command_is_a_502_naming_it(gateway: Running, tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-mcp-server")
    body = {"name": "ghost", "transport": "stdio", "command": missing, "env": {"API_KEY": SECRET}}
    with anyio.fail_after(10):
        response = await gateway.api.post("/api/v1/upstreams", json=body)
    problem = assert_problem(response, 502)
    assert "command not found" in problem["detail"]
    assert await saved_upstreams(gateway) == []


async def test_registering_a_command_that_exits_at_once_is_a_502(quick_gateway: Running) -> None:
    body = {
        "name": "quitter",
        "transport": "stdio",
        "command": sys.executable,
        "args": ["-c", "import sys; sys.exit(0)", "bastion-test-quitter"],
        "env": {"API_KEY": SECRET},
    }
    with anyio.fail_after(10):
        response = await quick_gateway.api.post("/api/v1/upstreams", json=body)
    problem = assert_problem(response, 502)
    assert "quitter" in problem["detail"]
    assert await saved_upstreams(quick_gateway) == []
    await assert_no_process_with("bastion-test-quitter")


async def test_registering_a_command_that_never_speaks_mcp_is_a_502_after_the_connect_deadline(
    quick_gateway: Running,
) -> None:
    body = {
        "name": "mute",
        "transport": "stdio",
        "command": sys.executable,
        "args": ["-c", "import time; time.sleep(60)", f"bastion-test-mute-{os.getpid()}"],
        "env": {"API_KEY": SECRET},
    }
    start = time.monotonic()
    with anyio.fail_after(6.5):
        response = await quick_gateway.api.post("/api/v1/upstreams", json=body)
    assert time.monotonic() - start >= 2.5  # it did wait for the handshake deadline (3 s)
    problem = assert_problem(response, 502)
    assert "mute" in problem["detail"]
    assert await saved_upstreams(quick_gateway) == []
    await assert_no_process_with(f"bastion-test-mute-{os.getpid()}")  # the silent child was killed


async def test_registering_a_duplicate_name_is_a_409_and_keeps_the_first(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    again = {**stdio_fixture("fx"), "env": {"API_KEY": SECRET}}
    response = await gateway.api.post("/api/v1/upstreams", json=again)
    problem = assert_problem(response, 409)
    assert "fx" in problem["detail"]
    assert await saved_upstreams(gateway) == ["fx"]
    shown = (await gateway.api.get("/api/v1/upstreams/fx")).json()
    assert shown["env"] == {}


async def test_header_and_env_values_never_come_back(gateway: Running) -> None:
    with http_fixture() as upstream:
        created = await gateway.api.post(
            "/api/v1/upstreams", json={**upstream.body("hx"), "headers": {"X-Secret": SECRET}}
        )
        assert created.status_code == 201, created.text
        assert SECRET not in created.text
        assert created.json()["headers"] == {"X-Secret": "********"}
    created = await gateway.api.post("/api/v1/upstreams", json={**stdio_fixture("ex"), "env": {"API_KEY": SECRET}})
    assert created.status_code == 201, created.text
    assert SECRET not in created.text
    for path in ("/api/v1/upstreams", "/api/v1/upstreams/hx", "/api/v1/upstreams/ex"):
        response = await gateway.api.get(path)
        assert response.status_code == 200, response.text
        assert SECRET not in response.text


# -- 5. concurrency ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ERAS)
async def test_concurrent_calls_share_one_stdio_process_and_run_in_parallel(gateway: Running, mode: str) -> None:
    await with_fx_server(gateway)
    async with gateway.client("vs", mode=mode) as client:
        results: list[str] = []

        async def slow() -> None:
            result = await client.call_tool("fx__slow", {"seconds": 0.5})
            assert not result.is_error, result
            results.append(result.content[0].text)

        start = time.monotonic()
        with anyio.fail_after(4):  # 16 × 0.5 s = 8 s if the calls were serialised
            async with anyio.create_task_group() as tg:
                for _ in range(16):
                    tg.start_soon(slow)
        assert results == ["done"] * 16
        assert time.monotonic() - start < 4

        pids: list[int] = []

        async def pid() -> None:
            pids.append(pid_of(await client.call_tool("fx__pid", {})))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for _ in range(16):
                    tg.start_soon(pid)
        assert len(pids) == 16
        assert len(set(pids)) == 1


# -- 6. per-user isolation -----------------------------------------------------------------


async def test_per_user_upstream_gets_one_process_per_user_and_shared_gets_one(gateway: Running) -> None:
    await gateway.register({**stdio_fixture("fx"), "isolation": "per_user"})
    await gateway.register(stdio_fixture("shared"))
    pool = gateway.bastion.pool
    call = {"name": "pid", "arguments": {}}

    with anyio.fail_after(30):
        u1 = raw_pid(await pool.request("fx", "tools/call", call, user="u1", timeout=10))
        u2 = raw_pid(await pool.request("fx", "tools/call", call, user="u2", timeout=10))
        u1_again = raw_pid(await pool.request("fx", "tools/call", call, user="u1", timeout=10))
        s1 = raw_pid(await pool.request("shared", "tools/call", call, user="u1", timeout=10))
        s2 = raw_pid(await pool.request("shared", "tools/call", call, user="u2", timeout=10))
        s_anon = raw_pid(await pool.request("shared", "tools/call", call, user=None, timeout=10))
    assert u1 == u1_again
    assert u1 != u2
    assert s1 == s2 == s_anon
    assert s1 not in (u1, u2)


# -- 7. stopping ---------------------------------------------------------------------------


async def test_stopping_the_gateway_ends_its_stdio_children(tmp_path: Path) -> None:
    async with serve(settings_for(sqlite_url(tmp_path))) as gateway:
        await with_fx_server(gateway)
        await gateway.register({**stdio_fixture("per"), "isolation": "per_user"})
        async with gateway.client("vs") as client:
            shared = pid_of(await client.call_tool("fx__pid", {}))
        call = {"name": "pid", "arguments": {}}
        per_user = raw_pid(await gateway.bastion.pool.request("per", "tools/call", call, user="u1", timeout=10))
        assert process_alive(shared) and process_alive(per_user)

    with anyio.fail_after(10):
        while process_alive(shared) or process_alive(per_user):
            await anyio.sleep(0.05)
    with pytest.raises(ProcessLookupError):
        os.kill(shared, 0)
    with pytest.raises(ProcessLookupError):
        os.kill(per_user, 0)
