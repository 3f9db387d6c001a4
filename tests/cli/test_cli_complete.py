"""The rest of the CLI against a real gateway: update and delete what it creates, the catalog by
kind, calling a tool, users and teams, probes, client configurations, JSON errors, and the
database-side admin token reset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner, Result

from bastion.cli.main import cli
from tests.harness import TOKEN, Running, serve, settings_for, stdio_fixture
from tests.identity import PASSWORD

pytestmark = pytest.mark.anyio


async def run(env: dict[str, str | None], *args: str, stdin: str | None = None) -> Result:
    full = {"NO_PROXY": "127.0.0.1,localhost", "BASTION_TOKEN": None, "BASTION_ADMIN_TOKEN": None, **env}
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli, list(args), env=full, input=stdin))


def as_admin(gateway: Running, tmp_path: Path) -> dict[str, str | None]:
    return {"BASTION_URL": gateway.base_url, "BASTION_TOKEN": TOKEN, "XDG_CONFIG_HOME": str(tmp_path)}


async def ok(env: dict[str, str | None], *args: str, stdin: str | None = None) -> Any:
    """Run a --json command that must succeed; its parsed output."""
    result = await run(env, *args, "--json", stdin=stdin)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if result.stdout.strip() else None


async def test_upstreams_servers_and_the_catalog_can_be_changed_from_the_cli(gateway: Running, tmp_path: Path) -> None:
    env = as_admin(gateway, tmp_path)
    await gateway.register(stdio_fixture("fx"))
    created = await ok(env, "servers", "create", "dev", "--tool", "fx__echo", "--visibility", "public")
    assert created["tools"] == ["fx__echo"] and created["visibility"] == "public"

    updated = await ok(env, "servers", "update", "dev", "--add-tool", "fx__add", "--remove-tool", "fx__echo",
                       "--add-prompt", "fx__greet", "--description", "for the CLI test")
    assert updated["tools"] == ["fx__add"] and updated["prompts"] == ["fx__greet"]
    assert updated["description"] == "for the CLI test"
    missing = await run(env, "servers", "update", "dev", "--remove-tool", "fx__nope")
    assert missing.exit_code == 2 and "not on the server" in missing.output

    limits = tmp_path / "limits.json"
    limits.write_text(json.dumps({"user": "100/minute"}))
    limited = await ok(env, "servers", "update", "dev", "--rate-limits", str(limits))
    assert limited["rate_limits"]["user"] == "100/minute"
    cleared = await ok(env, "servers", "update", "dev", "--clear-rate-limits")
    assert cleared["rate_limits"] is None

    assert (await ok(env, "tools", "show", "fx__add"))["input_schema"]["properties"].keys() >= {"a", "b"}
    renamed = await ok(env, "tools", "update", "fx__echo", "--description", "Says it back")
    assert renamed["description"] == "Says it back"
    assert [p["name"] for p in (await ok(env, "prompts", "list"))["items"]] == ["fx__greet"]
    assert (await ok(env, "prompts", "disable", "fx__greet"))["enabled"] is False
    uris = {r.get("uri") or r.get("uri_template") for r in (await ok(env, "resources", "list"))["items"]}
    assert "fixture://static" in uris

    disabled = await ok(env, "upstreams", "update", "fx", "--disable")
    assert disabled["enabled"] is False and disabled["status"] == "disabled"
    enabled = await ok(env, "upstreams", "update", "fx", "--enable")
    assert enabled["enabled"] is True
    nothing = await run(env, "upstreams", "update", "fx")
    assert nothing.exit_code == 2 and "nothing to change" in nothing.output


async def test_a_tool_is_called_through_a_virtual_server_from_the_cli(gateway: Running, tmp_path: Path) -> None:
    env = as_admin(gateway, tmp_path)
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "dev", "upstreams": ["fx"]})
    echoed = await run(env, "tools", "call", "dev", "fx__echo", "--args", '{"text": "hello from the cli"}')
    assert echoed.exit_code == 0, echoed.output
    assert "hello from the cli" in echoed.stdout
    added = await ok(env, "tools", "call", "dev", "fx__add", "--arg", "a=2", "--arg", "b=40")
    assert added["content"][0]["text"] == "42" and added.get("isError") is not True
    failed = await run(env, "tools", "call", "dev", "fx__fail", "--arg", "message=broken on purpose")
    assert failed.exit_code == 1 and "broken on purpose" in failed.stdout
    unknown = await run(env, "tools", "call", "dev", "fx__nope", "--json")
    assert unknown.exit_code == 1
    error = json.loads(unknown.stderr)["error"]
    assert "fx__nope" in error["detail"]


async def test_users_and_teams_are_managed_whole_and_shown_by_email(gateway: Running, tmp_path: Path) -> None:
    env = as_admin(gateway, tmp_path)
    user = await ok(env, "users", "create", "dev@example.com", "--role", "developer", "--password-stdin",
                    stdin=PASSWORD + "\n")
    assert (await ok(env, "users", "show", "dev@example.com"))["id"] == user["id"]
    changed = await ok(env, "users", "update", "dev@example.com", "--role", "viewer", "--deactivate")
    assert changed["role"] == "viewer" and changed["active"] is False
    await ok(env, "teams", "create", "alpha")
    await ok(env, "teams", "add-member", "alpha", "dev@example.com")
    table = await run(env, "teams", "show", "alpha")
    assert table.exit_code == 0 and "dev@example.com" in table.stdout and user["id"] not in table.stdout
    listed = await run(env, "users", "list")
    assert user["id"][:8] in listed.stdout and user["id"] not in listed.stdout  # short ids in tables
    assert (await ok(env, "teams", "remove-member", "alpha", "dev@example.com"))["removed"] == "dev@example.com"
    assert (await ok(env, "teams", "show", "alpha"))["members"] == []
    await ok(env, "teams", "remove", "alpha")
    gone = await run(env, "teams", "show", "alpha", "--json")
    assert gone.exit_code == 1 and json.loads(gone.stderr)["error"]["status"] == 404
    await ok(env, "users", "remove", "dev@example.com")
    assert (await run(env, "users", "show", "dev@example.com")).exit_code == 1


async def test_health_cluster_and_client_configs(gateway: Running, tmp_path: Path) -> None:
    env = as_admin(gateway, tmp_path)
    assert await ok(env, "health") == {"alive": True, "ready": True, "problems": []}
    assert "replica" in await ok(env, "cluster")
    claude = json.loads((await run(env, "connect", "dev", "--print-config", "claude")).stdout)
    entry = claude["mcpServers"]["dev"]
    assert entry["args"] == ["connect", "dev"] and entry["env"]["BASTION_URL"] == gateway.base_url
    vscode = json.loads((await run(env, "connect", "dev", "--print-config", "vscode")).stdout)
    assert vscode["servers"]["dev"]["url"] == gateway.mcp_url("dev") and TOKEN not in json.dumps(vscode)
    cursor = json.loads((await run(env, "connect", "dev", "--print-config", "cursor")).stdout)
    assert cursor["mcpServers"]["dev"]["url"] == gateway.mcp_url("dev")
    down = await run({"BASTION_URL": "http://127.0.0.1:9"}, "health", "--json")
    assert down.exit_code == 1 and "cannot reach" in json.loads(down.stderr)["error"]["detail"]


@pytest.mark.sqlite
async def test_a_lost_admin_token_is_reset_on_the_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/bastion.db"
    settings = settings_for(url).model_copy(update={"admin_token": None})
    async with serve(settings):
        pass  # first start: a generated admin token nobody kept
    reset = await run({"BASTION_DATABASE_URL": url}, "admin", "reset-token", "--yes")
    assert reset.exit_code == 0, reset.output
    token = reset.stdout.strip().rsplit(" ", 1)[-1]
    assert token.startswith("bst_")
    async with serve(settings) as gateway:
        env = {"BASTION_URL": gateway.base_url, "BASTION_TOKEN": token, "XDG_CONFIG_HOME": str(tmp_path)}
        assert (await ok(env, "upstreams", "list")) == {"items": [], "total": 0}
        old = await run({**env, "BASTION_TOKEN": TOKEN}, "upstreams", "list")
        assert old.exit_code == 1 and "Unauthenticated" in old.stderr
    refused = await run({"BASTION_DATABASE_URL": url, "BASTION_ADMIN_TOKEN": "bst_x"}, "admin", "reset-token", "--yes")
    assert refused.exit_code == 1 and "BASTION_ADMIN_TOKEN is set" in refused.output


async def test_a_rest_api_is_registered_from_the_cli_with_a_selection(gateway: Running, tmp_path: Path) -> None:
    import copy

    from tests.harness import serve_asgi
    from tests.upstreams.rest_service import DOCUMENT, build_app

    async with serve_asgi(build_app(copy.deepcopy(DOCUMENT), seen={})) as base:
        env = as_admin(gateway, tmp_path)
        added = await ok(env, "upstreams", "add", "pets", "--transport", "openapi", "--url", f"{base}/openapi.json",
                         "--include", "listPets", "--include", "getPet")
        assert added["counts"]["tools"] == 2
        wrong = await run(env, "upstreams", "add", "x", "--transport", "sse", "--url", f"{base}/sse", "--include", "a")
        assert wrong.exit_code == 2 and "for --transport openapi" in wrong.output
