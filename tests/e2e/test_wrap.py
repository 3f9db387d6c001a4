"""`bastion wrap`: a stdio MCP server exposed over Streamable HTTP by a real `bastion` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.harness import EVERYTHING, FIXTURE

pytestmark = pytest.mark.anyio

MODES = ["legacy", "2026-07-28"]
FIXTURE_CMD = [sys.executable, str(FIXTURE), "--transport", "stdio"]
EVERYTHING_CMD = ["node", str(EVERYTHING), "stdio"]


@dataclass
class WrapProcess:
    process: subprocess.Popen[str]
    url: str

    def client(self, mode: str, token: str | None = None) -> Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=None))
        return Client(streamable_http_client(self.url, http_client=http), mode=mode)

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        return await anyio.to_thread.run_sync(lambda: self.process.wait(timeout=20))


@asynccontextmanager
async def wrapped(
    command: Sequence[str], *options: str, tmp_path: Path, env: dict[str, str] | None = None
) -> AsyncIterator[WrapProcess]:
    """Run `bastion wrap [options] -- command` and wait for its READY line."""
    stderr = (tmp_path / "wrap.stderr").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "bastion", "wrap", "--port", "0", *options, "--", *command],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert process.stdout is not None
    try:
        with anyio.fail_after(60):
            line = await anyio.to_thread.run_sync(process.stdout.readline, abandon_on_cancel=True)
        assert line.startswith("READY http://127.0.0.1:"), (line, (tmp_path / "wrap.stderr").read_text())
        yield WrapProcess(process, line.split()[1])
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stderr.close()


async def tool_names(client: Client) -> set[str]:
    return {t.name for t in (await client.list_tools()).tools}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.node
@pytest.mark.parametrize("mode", MODES)
async def test_wrap_serves_everything_under_its_original_names(tmp_path: Path, mode: str) -> None:
    if not EVERYTHING.exists():
        pytest.fail(f"{EVERYTHING} is missing: run scripts/install-node-tools first")
    async with wrapped(EVERYTHING_CMD, tmp_path=tmp_path) as wrap:
        async with wrap.client(mode) as client:
            names = await tool_names(client)
            result = await client.call_tool("echo", {"message": "hello ✓"})
        assert {"echo", "get-sum", "get-structured-content"} <= names
        assert not any("__" in name for name in names)
        assert [(c.type, c.text) for c in result.content] == [("text", "Echo: hello ✓")]
        assert await wrap.stop() == 0


@pytest.mark.parametrize("mode", MODES)
async def test_wrap_keeps_structured_content_and_tool_errors(tmp_path: Path, mode: str) -> None:
    async with wrapped(FIXTURE_CMD, tmp_path=tmp_path) as wrap, wrap.client(mode) as client:
        added = await client.call_tool("add", {"a": 2, "b": 3})
        failed = await client.call_tool("fail", {"message": "nope"})
    assert added.structured_content == {"result": 5}
    assert failed.is_error is True
    assert [c.text for c in failed.content] == ["nope"]


@pytest.mark.parametrize("mode", MODES)
async def test_wrap_lists_a_tool_the_child_adds_at_runtime(tmp_path: Path, mode: str) -> None:
    async with wrapped(FIXTURE_CMD, tmp_path=tmp_path) as wrap, wrap.client(mode) as client:
        assert "late" not in await tool_names(client)
        await client.call_tool("add_tool", {"name": "late"})
        # The child's list_changed reaches wrap, which rediscovers; nothing tells this client when.
        with anyio.fail_after(15):
            while "late" not in await tool_names(client):
                await anyio.sleep(0.05)
        result = await client.call_tool("late", {})
    assert [c.text for c in result.content] == ["late called"]


async def test_wrap_with_token_refuses_requests_without_it(tmp_path: Path) -> None:
    token = "wrap-secret-0123456789"
    async with wrapped(FIXTURE_CMD, tmp_path=tmp_path, env={"BASTION_WRAP_TOKEN": token}) as wrap:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        async with httpx2.AsyncClient() as http:
            missing = await http.post(wrap.url, json=body)
            wrong = await http.post(wrap.url, json=body, headers={"Authorization": "Bearer wrong"})
        async with wrap.client("legacy", token=token) as client:
            names = await tool_names(client)
    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert "echo" in names


async def test_wrap_without_command_fails_with_usage() -> None:
    done = subprocess.run([sys.executable, "-m", "bastion", "wrap"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


async def test_wrap_of_a_command_that_does_not_exist_fails_cleanly(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bastion", "wrap", "--", str(tmp_path / "no-such-server")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "no-such-server" in done.stderr
    assert "Traceback" not in done.stderr
    assert "READY" not in done.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_stopping_wrap_stops_the_child(tmp_path: Path, sig: int) -> None:
    async with wrapped(FIXTURE_CMD, tmp_path=tmp_path) as wrap:
        async with wrap.client("legacy") as client:
            child = int((await client.call_tool("pid", {})).content[0].text)
        assert alive(child)
        assert await wrap.stop(sig) == 0
    assert not alive(child)
