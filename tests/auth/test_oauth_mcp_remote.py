"""`mcp-remote` from npm (a real, widely used OAuth MCP client) against Bastion's authorization
server: it discovers it from the 401, registers, opens "the browser" (a script that signs in on
the consent page) and then proxies stdio to the virtual server with the token it got."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, get_default_environment

from tests.auth.oauth_client import serve_public
from tests.harness import ROOT, stdio_fixture
from tests.identity import PASSWORD, make_user

pytestmark = pytest.mark.anyio

MCP_REMOTE = ROOT / "tools" / "node_modules" / "mcp-remote" / "dist" / "proxy.js"
BROWSER = Path(__file__).with_name("consent_browser.py")


@pytest.mark.skipif(not MCP_REMOTE.exists() or shutil.which("node") is None, reason="mcp-remote is not installed")
@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_mcp_remote_signs_in_on_the_consent_page_and_calls_tools(tmp_path: Path, mode: str) -> None:
    async with serve_public(f"sqlite+aiosqlite:///{tmp_path}/b.db") as gateway:
        await gateway.register(stdio_fixture("fx"))
        await gateway.create_server({"name": "vs1", "upstreams": ["fx"], "visibility": "public"})
        await make_user(gateway, "remote@example.com", "developer")
        opener = tmp_path / "browser.sh"
        opener.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{BROWSER}" "$1"\n')
        opener.chmod(0o755)
        env = {
            **get_default_environment(),
            "BROWSER": str(opener),
            "MCP_REMOTE_CONFIG_DIR": str(tmp_path / "mcp-auth"),
            "BASTION_TEST_EMAIL": "remote@example.com",
            "BASTION_TEST_PASSWORD": PASSWORD,
            "BASTION_TEST_BROWSER_LOG": str(tmp_path / "browser.log"),
        }
        for name in ("DISPLAY", "WAYLAND_DISPLAY", "XDG_CURRENT_DESKTOP"):
            env.pop(name, None)  # xdg-open then falls back to $BROWSER
        params = StdioServerParameters(
            command="node",
            args=[str(MCP_REMOTE), gateway.mcp_url("vs1"), "--allow-http", "--silent"],
            env=env,
            cwd=str(tmp_path),
        )
        async with Client(params, mode=mode) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            result = await client.call_tool("fx__echo", {"text": "via mcp-remote"})
    assert "fx__echo" in names
    assert [c.text for c in result.content] == ["via mcp-remote"]  # type: ignore[union-attr]
    assert (tmp_path / "browser.log").read_text().splitlines() == ["303"]  # signed in once, on the page
    assert os.listdir(tmp_path / "mcp-auth")  # it kept the tokens it got, as a real user's would be
