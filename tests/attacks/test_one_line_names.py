"""Attack class: a name Bastion draws on one line, given line breaks. Token names were checked only
for characters a browser hides, which lets a line feed, a carriage return and a tab through (a JSON
diff keeps them), so "ci\\nrevoked: all tokens" was drawn as two lines in the log, the CLI's table
and the admin tokens page. Now a token name with any control character (Unicode category Cc) is
refused with a 400 naming the field, over REST as the admin and as a user, and from the CLI.
(A user's email already refuses whitespace, so its line breaks and tabs, and every other control.)"""

from __future__ import annotations

import anyio
import pytest
from click.testing import CliRunner

from bastion.cli.main import cli
from tests.attacks.test_people_text_input import problem
from tests.harness import TOKEN, Running
from tests.identity import make_user, signed_in

pytestmark = pytest.mark.anyio
CONTROLS = {"line feed": "\n", "carriage return": "\r", "tab": "\t"}  # the rest of Cc was refused already


@pytest.mark.parametrize("control", list(CONTROLS.values()), ids=list(CONTROLS))
async def test_a_token_name_with_a_control_character_is_refused_naming_the_field(gateway: Running, control: str) -> None:
    name = f"ci{control}revoked: all tokens"
    body = {"name": name, "permissions": ["read"]}
    detail = problem(await gateway.api.post("/api/v1/tokens", json=body), "name")
    assert control not in detail and "\\u00" in detail, detail  # which character, written out
    await make_user(gateway, "dev@example.com", "developer")
    async with signed_in(gateway, "dev@example.com") as dev:
        problem(await dev.post("/api/v1/tokens", json=body), "name")
    names = [t["name"] for t in (await gateway.api.get("/api/v1/tokens")).json()["items"]]
    assert name not in names, names


async def test_the_cli_refuses_a_token_name_of_two_lines(gateway: Running) -> None:
    args = ["tokens", "--url", gateway.base_url, "create", "ci\nrevoked: all tokens", "--permission", "read"]
    env = {"BASTION_TOKEN": TOKEN}
    result = await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli, args, env=env))
    assert result.exit_code != 0, result.output
    assert "'name'" in result.stderr and "\\u000a" in result.stderr, result.stderr

