"""Interoperability with a client nobody on the team wrote: the MCP Inspector 2.x CLI, in both eras.

The CLI (Node 22, a child process) talks to the virtual server `vs` (the fixture upstream over
stdio) through a recording pass-through in front of Bastion, so each test can also check which
era really went over the wire and that the CLI's own `--header` carried the token.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from starlette.types import Receive, Scope, Send

from tests.conformance.auth_proxy import AuthProxy
from tests.harness import ROOT, TOKEN, serve, serve_asgi, settings_for, stdio_fixture

pytestmark = [pytest.mark.anyio, pytest.mark.node]

INSPECTOR = ROOT / "tools" / "node_modules" / "@modelcontextprotocol" / "inspector"
NODE22 = ROOT / "scripts" / "node22"
ERAS = {"legacy": "2025-11-25", "modern": "2026-07-28"}


def cli_entry() -> Path:
    """The `mcp-inspector` bin of the installed package (the launcher; `--cli` selects the CLI)."""
    package = INSPECTOR / "package.json"
    if not package.exists():
        pytest.fail(f"{INSPECTOR} is missing: run scripts/install-node-tools first")
    return INSPECTOR / json.loads(package.read_text())["bin"]["mcp-inspector"]


@dataclass
class Recorder:
    """Passes every request on unchanged (through AuthProxy) and keeps its headers."""

    target: str
    requests: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # AuthProxy sets the token itself; the recorded headers show whether the CLI sent it too.
        self.proxy = AuthProxy(self.target, TOKEN)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            self.requests.append({"method": scope["method"], **headers})
        await self.proxy(scope, receive, send)


@dataclass
class Inspected:
    url: str
    recorder: Recorder
    home: Path

    async def run(self, era: str, *args: str) -> dict[str, Any]:
        """Run one CLI invocation against the virtual server; return its parsed JSON output."""
        command = [
            str(NODE22), str(cli_entry()), "--cli", self.url,
            "--transport", "http",
            "--protocol-era", era,
            "--header", f"Authorization: Bearer {TOKEN}",
            "--format", "json",
            *args,
        ]  # fmt: skip
        # The CLI keeps a catalog and client config under $HOME; keep them in the test's directory.
        env = {
            **os.environ,
            "HOME": str(self.home),
            "MCP_CATALOG_PATH": str(self.home / "mcp.json"),
            "MCP_CLIENT_CONFIG_PATH": str(self.home / "client.json"),
        }
        self.recorder.requests.clear()
        with anyio.fail_after(60):
            done = await anyio.run_process(command, env=env, check=False)
        stdout, stderr = done.stdout.decode(), done.stderr.decode()
        assert done.returncode == 0, f"exit {done.returncode}\nstdout: {stdout}\nstderr: {stderr}"
        return json.loads(stdout)

    def assert_spoke(self, era: str) -> None:
        """Every request carried the CLI's token, and the wire was the era asked for."""
        seen = self.recorder.requests
        assert seen, "the CLI sent nothing through the recorder"
        assert {r.get("authorization") for r in seen} == {f"Bearer {TOKEN}"}
        versions = {r["mcp-protocol-version"] for r in seen if "mcp-protocol-version" in r}
        assert versions == {ERAS[era]}, seen
        sessions = {r["mcp-session-id"] for r in seen if "mcp-session-id" in r}
        if era == "legacy":
            assert len(sessions) == 1, seen  # one initialized session, used for the call
        else:
            assert not sessions, seen  # 2026-07-28 is stateless
            assert all("mcp-method" in r for r in seen if r["method"] == "POST"), seen


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def inspected(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Inspected]:
    home = tmp_path_factory.mktemp("inspector")
    async with serve(settings_for(f"sqlite+aiosqlite:///{home}/bastion.db")) as gateway:
        await gateway.register(stdio_fixture("fx"))
        await gateway.create_server({"name": "vs", "upstreams": ["fx"]})
        recorder = Recorder(gateway.base_url)
        async with serve_asgi(recorder) as base:
            yield Inspected(f"{base}/servers/vs/mcp", recorder, home)


@pytest.mark.parametrize("era", ERAS)
async def test_inspector_lists_the_prefixed_tools(inspected: Inspected, era: str) -> None:
    output = await inspected.run(era, "--method", "tools/list")
    names = {tool["name"] for tool in output["result"]["tools"]}
    assert {"fx__echo", "fx__add"} <= names
    assert all(name.startswith("fx__") for name in names)
    inspected.assert_spoke(era)


@pytest.mark.parametrize("era", ERAS)
async def test_inspector_calls_echo(inspected: Inspected, era: str) -> None:
    output = await inspected.run(
        era, "--method", "tools/call", "--tool-name", "fx__echo", "--tool-args-json", '{"text": "hi"}'
    )
    result = output["result"]
    assert result["isError"] is False
    assert result["content"] == [{"type": "text", "text": "hi"}]
    inspected.assert_spoke(era)
    if era == "modern":  # the 2026-07-28 routing headers name the call
        calls = [r for r in inspected.recorder.requests if r.get("mcp-method") == "tools/call"]
        assert [r.get("mcp-name") for r in calls] == ["fx__echo"]


@pytest.mark.parametrize("era", ERAS)
async def test_inspector_calls_add_and_gets_structured_content(inspected: Inspected, era: str) -> None:
    args = ("--method", "tools/call", "--tool-name", "fx__add", "--tool-args-json", '{"a": 2, "b": 3}')
    result = (await inspected.run(era, *args))["result"]
    assert result["isError"] is False
    assert result["structuredContent"] == {"result": 5}
    assert result["content"] == [{"type": "text", "text": "5"}]
    inspected.assert_spoke(era)
