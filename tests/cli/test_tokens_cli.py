"""`bastion tokens ...` against a real gateway (the CLI is synchronous, so it runs in a thread)."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner, Result

from bastion.cli.main import cli
from bastion.cli.tokens import NOT_SHOWN_AGAIN
from tests.harness import TOKEN, Running, stdio_fixture

pytestmark = pytest.mark.anyio


async def run(gateway: Running, *args: str) -> Result:
    env = {"BASTION_URL": gateway.base_url, "BASTION_TOKEN": TOKEN, "NO_PROXY": "127.0.0.1,localhost"}
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli, list(args), env=env))


async def test_create_list_revoke(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs1", "upstreams": ["fx"]})
    args = ["--server", "vs1", "--permission", "mcp", "--permission", "read", "--expires-in", "600", "--ip", "127.0.0.1"]
    created = await run(gateway, "tokens", "create", "ci", *args, "--json")
    assert created.exit_code == 0, created.stderr
    body = json.loads(created.stdout)
    assert body["servers"] == ["vs1"] and body["permissions"] == ["mcp", "read"]
    assert body["ip_allow"] == ["127.0.0.1/32"] and body["token"].startswith("bst_")
    assert NOT_SHOWN_AGAIN in created.stderr
    headers = {"Authorization": f"Bearer {body['token']}"}
    assert (await gateway.api.get("/api/v1/tools", headers=headers)).status_code == 200

    table = await run(gateway, "tokens", "create", "everywhere", "--all-servers")
    assert table.exit_code == 0, table.stderr
    assert "Token: bst_" in table.stdout and NOT_SHOWN_AGAIN in table.stdout

    listed = await run(gateway, "tokens", "list", "--json")
    items = json.loads(listed.stdout)["items"]
    assert [t["name"] for t in items] == ["ci", "everywhere"]
    assert body["token"] not in listed.stdout
    human = await run(gateway, "tokens", "list")
    assert "ci" in human.stdout and "everywhere" in human.stdout

    revoked = await run(gateway, "tokens", "revoke", body["id"])
    assert revoked.exit_code == 0 and body["id"] in revoked.stdout
    assert (await gateway.api.get("/api/v1/tools", headers=headers)).status_code == 401


async def test_refusals_are_reported(gateway: Running) -> None:
    both = await run(gateway, "tokens", "create", "x", "--server", "a", "--all-servers")
    assert both.exit_code == 2
    unknown = await run(gateway, "tokens", "create", "x", "--server", "nope")
    assert unknown.exit_code == 1 and "nope" in unknown.stderr
    missing = await run(gateway, "tokens", "revoke", "no-such-id")
    assert missing.exit_code == 1 and "Not found" in missing.stderr


async def test_servers_policy_sets_replaces_and_clears(gateway: Running, tmp_path: Path) -> None:
    await gateway.register(stdio_fixture("fx"))
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps({"rules": [{"effect": "allow", "tools": ["fx__echo"]}]}))
    created = await run(gateway, "servers", "create", "vs", "--upstream", "fx", "--policy", str(policy_file), "--json")
    assert created.exit_code == 0, created.stderr
    assert json.loads(created.stdout)["policy"]["rules"][0]["tools"] == ["fx__echo"]

    policy_file.write_text(json.dumps({"default": "allow"}))
    replaced = await run(gateway, "servers", "policy", "vs", str(policy_file))
    assert replaced.exit_code == 0, replaced.stderr
    assert (await gateway.api.get("/api/v1/servers/vs")).json()["policy"] == {"default": "allow", "rules": []}

    policy_file.write_text("{not json")
    bad = await run(gateway, "servers", "policy", "vs", str(policy_file))
    assert bad.exit_code == 2 and "not valid JSON" in bad.stderr
    policy_file.write_text(json.dumps({"rules": [{"effect": "allow"}]}))
    refused = await run(gateway, "servers", "policy", "vs", str(policy_file))
    assert refused.exit_code != 0 and "Traceback" not in refused.output

    cleared = await run(gateway, "servers", "policy", "vs", "--clear")
    assert cleared.exit_code == 0, cleared.stderr
    assert (await gateway.api.get("/api/v1/servers/vs")).json()["policy"] is None


async def test_tools_call_reports_the_gateways_refusal_in_its_own_words(gateway: Running) -> None:
    # The SDK client turns an HTTP 403/404 into a bare "MCP error -32603/-32601": the CLI says why.
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "one", "upstreams": ["fx"]})
    await gateway.create_server({"name": "two", "upstreams": ["fx"]})
    created = await gateway.api.post("/api/v1/tokens", json={"name": "one-only", "servers": ["one"], "permissions": ["mcp"]})
    env = {"BASTION_URL": gateway.base_url, "BASTION_TOKEN": created.json()["token"], "NO_PROXY": "127.0.0.1,localhost"}
    args = ["tools", "call", "two", "fx__echo", "--arg", "text=hi"]
    refused = await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli, args, env=env))
    assert refused.exit_code == 1
    assert "may not use the virtual server 'two'" in refused.stderr
    missing = await run(gateway, "tools", "call", "nosuch", "fx__echo", "--json")
    assert missing.exit_code == 1
    assert json.loads(missing.stderr)["error"] == {"title": "Not found", "detail": "virtual server 'nosuch' does not exist", "status": 404}
    called = await run(gateway, "tools", "call", "one", "fx__echo", "--arg", "text=hi")
    assert called.exit_code == 0, called.stderr
