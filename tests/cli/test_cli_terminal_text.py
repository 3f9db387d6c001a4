"""What the CLI prints that strangers wrote (an upstream's tool names and descriptions, an identity
provider's emails, an upstream's error text) cannot drive the terminal: escape sequences (clear the
screen, retitle the window, rewrite the line) and characters drawn as nothing or that reorder a line
are written out as escapes, in tables and in --json alike (the JSON still decodes to the same text)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner, Result

from bastion.cli.main import cli
from tests.harness import TOKEN, Running
from tests.upstreams import hostile_server

pytestmark = pytest.mark.anyio
DESCRIPTION = "Reads\x1b]0;owned\x07\x1b[2J\x1b[1A\r files \u202eexe.txt\u200b \x9b31m"
"""OSC retitle, clear screen, cursor up, carriage return, RLO, zero-width space, 8-bit CSI."""
DRIVING = ("\x1b", "\x07", "\r", "\u202e", "\u200b", "\x9b")


async def run(gateway: Running, *args: str) -> Result:
    env = {"BASTION_URL": gateway.base_url, "BASTION_TOKEN": TOKEN, "NO_PROXY": "127.0.0.1,localhost"}
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli, list(args), env=env))


async def test_an_upstreams_text_is_printed_escaped(gateway: Running, tmp_path: Path) -> None:
    listed = tmp_path / "tools.json"
    listed.write_text(json.dumps([{"name": "reader", "description": DESCRIPTION, "inputSchema": {"type": "object"}}]))
    await gateway.register(
        {
            "name": "odd",
            "transport": "stdio",
            "command": sys.executable,
            "args": [hostile_server.__file__, "--tools", str(listed)],
        }
    )
    for args in (("tools", "list"), ("tools", "show", "odd__reader")):
        shown = await run(gateway, *args)
        assert shown.exit_code == 0, shown.output
        assert not [c for c in DRIVING if c in shown.stdout], shown.stdout
        assert "\\u001b" in shown.stdout and "\\u202e" in shown.stdout
    as_json = await run(gateway, "tools", "show", "odd__reader", "--json")
    assert as_json.exit_code == 0 and not [c for c in DRIVING if c in as_json.stdout]
    assert json.loads(as_json.stdout)["description"] == DESCRIPTION


def test_a_status_line_quoting_the_gateway_cannot_forge_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    from bastion.cli.output import message

    message("+ create server 'ops\nDeleted: every upstream\x1b[2K'")
    assert capsys.readouterr().out == "+ create server 'ops\\nDeleted: every upstream\\u001b[2K'\n"
