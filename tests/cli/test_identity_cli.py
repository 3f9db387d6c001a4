"""`bastion users|teams|login|logout` against a real gateway, and the first admin with no server."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner, Result

from bastion.cli.main import cli
from tests.harness import TOKEN, Running, serve, settings_for
from tests.identity import PASSWORD, login

pytestmark = pytest.mark.anyio


async def run(env: dict[str, str | None], *args: str, stdin: str | None = None) -> Result:
    full = {"NO_PROXY": "127.0.0.1,localhost", "BASTION_TOKEN": None, **env}
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli, list(args), env=full, input=stdin))


async def test_users_teams_login_and_logout(gateway: Running, tmp_path: Path) -> None:
    admin = {"BASTION_URL": gateway.base_url, "BASTION_TOKEN": TOKEN, "XDG_CONFIG_HOME": str(tmp_path)}
    created = await run(admin, "users", "create", "dev@example.com", "--role", "developer", "--password-stdin",
                        "--json", stdin=PASSWORD + "\n")
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["role"] == "developer" and PASSWORD not in created.output
    assert (await run(admin, "teams", "create", "alpha")).exit_code == 0
    added = await run(admin, "teams", "add-member", "alpha", "dev@example.com", "--json")
    assert added.exit_code == 0 and len(json.loads(added.stdout)["members"]) == 1
    table = await run(admin, "users", "list")
    assert "dev@example.com" in table.stdout and "developer" in table.stdout
    assert "alpha" in (await run(admin, "teams", "list")).stdout

    user = {k: v for k, v in admin.items() if k != "BASTION_TOKEN"}
    signed = await run(user, "login", "dev@example.com", "--password-stdin", stdin=PASSWORD + "\n")
    assert signed.exit_code == 0, signed.output
    (stored,) = tmp_path.glob("bastion/credentials.json")
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600 and PASSWORD not in stored.read_text()
    mine = await run(user, "teams", "list", "--json")
    assert mine.exit_code == 0 and [t["name"] for t in json.loads(mine.stdout)["items"]] == ["alpha"]
    refused = await run(user, "users", "list")
    assert refused.exit_code == 1 and "Forbidden" in refused.stderr

    assert (await run(user, "logout")).exit_code == 0
    after = await run(user, "teams", "list")
    assert after.exit_code == 1 and "Unauthenticated" in after.stderr
    wrong = await run(user, "login", "dev@example.com", "--password-stdin", stdin="nope-nope\n")
    assert wrong.exit_code == 1 and "Unauthenticated" in wrong.stderr


@pytest.mark.sqlite
async def test_first_admin_from_the_cli_before_any_server_runs(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/bastion.db"
    env: dict[str, str | None] = {"BASTION_DATABASE_URL": url, "XDG_CONFIG_HOME": str(tmp_path)}
    args = ("users", "create", "root@example.com", "--admin", "--password-stdin")
    created = await run(env, *args, stdin=PASSWORD + "\n")
    assert created.exit_code == 0, created.output
    assert "admin" in created.stdout
    again = await run(env, "users", "create", "ROOT@example.com", "--admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert again.exit_code == 1 and "already exists" in again.stderr
    async with serve(settings_for(url)) as gw:
        signed = await login(gw, "root@example.com")
        assert signed.status_code == 200 and signed.json()["user"]["role"] == "admin"
