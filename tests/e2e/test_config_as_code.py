"""Configuration as code: export -> fresh database -> import gives the same configuration; imports are
idempotent, dry runs change nothing, prune deletes what the file leaves out, bad documents change
nothing, and `bastion serve --config` applies a file on start and on SIGHUP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import yaml

from bastion.core.config_doc import dump, read_document, resolve_references
from tests.harness import (
    FIXTURE,
    TOKEN,
    HttpUpstream,
    Running,
    free_port,
    http_fixture,
    serve,
    settings_for,
    stdio_fixture,
)
from tests.upstreams.registry_server import load_documents

pytestmark = pytest.mark.anyio
PASSWORD = "correct-horse-battery-9"
HEADER_VAR = "BASTION_SECRET_REMOTE_HEADER_X_API_KEY"
ENV_VAR = "BASTION_SECRET_LOCAL_ENV_FIXTURE_TOKEN"


@pytest.fixture
def upstream() -> Iterator[HttpUpstream]:
    with http_fixture("streamable-http") as running:
        yield running


async def ok(response: httpx2.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def configure(gw: Running, upstream: HttpUpstream, registry_dir: Path) -> None:
    """Everything a document carries, set up through the REST API as an operator would."""
    await ok(await gw.api.post("/api/v1/users", json={"email": "ada@example.com", "password": PASSWORD}), 201)
    await ok(await gw.api.post("/api/v1/teams", json={"name": "data"}), 201)
    await ok(await gw.api.post("/api/v1/teams/data/members", json={"user": "ada@example.com"}))
    await ok(await gw.api.post("/api/v1/registries", json={"name": "local", "path": str(registry_dir)}), 201)
    await gw.register({**upstream.body("remote"), "headers": {"X-Api-Key": "s3cret-header"}, "team": "data", "pin": "warn"})
    await gw.register({**stdio_fixture("local"), "env": {"FIXTURE_TOKEN": "s3cret-env"}, "visibility": "public"})
    await gw.create_server({
        "name": "triage",
        "description": "for the on-call",
        "upstreams": ["local"],
        "tools": ["remote__echo", "remote__whoami"],
        "policy": {"default": "deny", "rules": [
            {"effect": "allow", "users": ["ada@example.com"], "tools": ["*"]},
            {"effect": "allow", "teams": ["data"], "tools": ["remote__*"]},
            {"effect": "allow", "roles": ["admin"], "tools": ["*"]},
        ]},
        "rate_limits": {"user": "100/minute", "tools": {"remote__echo": "5/minute"}},
        "transforms": {"remote__echo": {"description": "Say it back", "arguments": {"text": {"rename": "message"}}}},
        "team": "data",
    })


def registry_directory(tmp_path: Path, upstream: HttpUpstream) -> Path:
    directory = tmp_path / "registry"
    directory.mkdir()
    (directory / "server.json").write_text(json.dumps(load_documents(upstream.url)[0]))
    return directory


async def export(gw: Running) -> dict[str, Any]:
    data = await ok(await gw.api.get("/api/v1/config"))
    assert isinstance(data, dict)
    return data


async def import_(gw: Running, body: str | dict[str, Any], status: int = 200, **params: str) -> Any:
    content = body if isinstance(body, str) else json.dumps(body)
    return await ok(await gw.api.post("/api/v1/config", content=content, params=params), status)


def as_cli_sends(document: dict[str, Any], environ: dict[str, str]) -> dict[str, Any]:
    """What `bastion import FILE` sends: the file read, checked, its references resolved from the environment."""
    return dump(resolve_references(read_document(yaml.safe_dump(document)), environ))


async def test_export_to_a_fresh_database_and_import_gives_the_same_configuration(
    tmp_path: Path, upstream: HttpUpstream
) -> None:
    registry_dir = registry_directory(tmp_path, upstream)
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/a.db")) as first:
        await configure(first, upstream, registry_dir)
        yaml_text = (await first.api.get("/api/v1/config", params={"format": "yaml"})).text
        exported = await export(first)
    assert "s3cret" not in yaml_text and "s3cret" not in json.dumps(exported)
    assert yaml.safe_load(yaml_text) == exported
    remote = next(u for u in exported["upstreams"] if u["name"] == "remote")
    assert remote["headers"] == {"X-Api-Key": "${" + HEADER_VAR + "}"} and remote["team"] == "data"
    triage = exported["servers"][0]
    assert triage["policy"]["rules"][0]["users"] == ["ada@example.com"]  # by email, not a database id

    environ = {HEADER_VAR: "s3cret-header", ENV_VAR: "s3cret-env"}
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as second:
        # Users are not part of the document (passwords): the new site has its own.
        await ok(await second.api.post("/api/v1/users", json={"email": "ada@example.com", "password": PASSWORD}), 201)
        reply = await import_(second, as_cli_sends(exported, environ))
        assert [a["line"] for a in reply["actions"]] == [
            "+ team data", "+ registry local", "+ upstream local", "+ upstream remote", "+ server triage",
        ]
        assert await export(second) == exported
        again = await import_(second, yaml.safe_dump(exported))  # idempotent, even with no variable set
        assert again["actions"] == []
        # The secret came through: the upstream receives the header the first site was given.
        async with second.client("triage") as client:
            result = await client.call_tool("remote__whoami", {})
            assert json.loads(result.content[0].text)["x-api-key"] == "s3cret-header"  # type: ignore[union-attr]
            renamed = await client.call_tool("remote__echo", {"message": "hi"})
            assert renamed.content[0].text == "hi"  # type: ignore[union-attr]


async def test_dry_run_prune_and_bad_documents_change_nothing(gateway: Running, upstream: HttpUpstream) -> None:
    await gateway.register({**upstream.body("remote"), "headers": {"X-Api-Key": "stored"}})
    await gateway.create_server({"name": "one", "upstreams": ["remote"]})
    before = await export(gateway)

    wanted = {**before, "teams": [{"name": "ops"}], "servers": [{"name": "two", "tools": ["remote__echo"]}]}
    dry = await import_(gateway, wanted, dry_run="true")
    assert [a["line"] for a in dry["actions"]] == ["+ team ops", "+ server two"]
    assert await export(gateway) == before

    bad_documents = {
        "unknown key": ({**before, "upstreams": [{**before["upstreams"][0], "colour": "red"}]}, "upstreams.0.colour"),
        "invalid value": ({**wanted, "servers": [{"name": "two", "prefix": "sometimes"}]}, "servers.0.prefix"),
        "unknown top-level key": ({**wanted, "tokens": []}, "tokens"),
        "missing variable": (
            {**wanted, "upstreams": [*before["upstreams"], {**upstream.body("other"), "headers": {"A": "${NOT_SET_ANYWHERE}"}}]},
            "NOT_SET_ANYWHERE",
        ),
        "server naming a missing tool": ({**wanted, "servers": [{"name": "two", "tools": ["remote__nope"]}]}, "remote__nope"),
        "blocked address": (
            {**wanted, "upstreams": [{"name": "meta", "transport": "streamable-http", "url": "http://169.254.169.254/mcp"}]},
            "meta",
        ),
    }
    for case, (document, named) in bad_documents.items():
        response = await gateway.api.post("/api/v1/config", content=json.dumps(document))
        assert 400 <= response.status_code < 500, (case, response.text)
        assert named in response.json()["detail"], (case, response.text)
        assert await export(gateway) == before, case
    broken = await gateway.api.post("/api/v1/config", content="teams: [\n  - name: x\n bad")
    assert broken.status_code == 400 and "line" in broken.json()["detail"]

    applied = await import_(gateway, wanted)
    assert [a["line"] for a in applied["actions"]] == ["+ team ops", "+ server two"]
    assert [s["name"] for s in (await export(gateway))["servers"]] == ["one", "two"]  # no prune: "one" stays
    pruned = await import_(gateway, {"teams": [{"name": "ops"}]}, prune="true")
    assert [a["line"] for a in pruned["actions"]] == ["- server one", "- server two", "- upstream remote"]
    after = await export(gateway)
    assert after["servers"] == [] and after["upstreams"] == [] and after["teams"] == [{"name": "ops"}]


async def test_an_update_keeps_an_unresolved_secret_and_replaces_a_given_one(gateway: Running, upstream: HttpUpstream) -> None:
    await gateway.register({**upstream.body("remote"), "headers": {"X-Api-Key": "first"}})
    await gateway.create_server({"name": "vs", "upstreams": ["remote"]})
    document = await export(gateway)

    async def key_seen() -> str:
        async with gateway.client("vs") as client:
            result = await client.call_tool("remote__whoami", {})
            return str(json.loads(result.content[0].text)["x-api-key"])  # type: ignore[union-attr]

    document["upstreams"][0]["pin"] = "warn"
    changed = await import_(gateway, document)
    assert [a["line"] for a in changed["actions"]] == ["~ upstream remote (pin)"]
    assert await key_seen() == "first"
    rotated = await import_(gateway, as_cli_sends(document, {HEADER_VAR.replace("X_API_KEY", "X_API_KEY"): "second"}))
    assert [a["line"] for a in rotated["actions"]] == ["~ upstream remote (headers)"]
    assert await key_seen() == "second"


async def test_only_admins_export_or_import(gateway: Running) -> None:
    await ok(await gateway.api.post("/api/v1/users", json={"email": "dev@example.com", "password": PASSWORD}), 201)
    login = await ok(await gateway.api.post("/api/v1/auth/login", json={"email": "dev@example.com", "password": PASSWORD}))
    headers = {"Authorization": f"Bearer {login['token']}"}
    assert (await gateway.api.get("/api/v1/config", headers=headers)).status_code == 403
    denied = await gateway.api.post("/api/v1/config", content="teams: [{name: x}]", headers=headers)
    assert denied.status_code == 403
    assert (await export(gateway))["teams"] == []


def _serve_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "BASTION_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/serve.db",
        "BASTION_ALLOW_PRIVATE_UPSTREAMS": "true",
        "BASTION_ADMIN_TOKEN": TOKEN,
        "BASTION_VAULT_KEY_FILE": f"{tmp_path}/vault.key",
        "FIXTURE_SECRET": "from-the-environment",
    }


@pytest.mark.timeout(300)  # the child's start alone may take the default 120 s on a loaded machine
async def test_serve_with_config_applies_it_on_start_on_sighup_and_when_it_changes(tmp_path: Path) -> None:
    config = tmp_path / "bastion.yaml"
    document = {
        "upstreams": [{
            "name": "local", "transport": "stdio", "command": sys.executable,
            "args": [str(FIXTURE), "--transport", "stdio"], "env": {"FIXTURE_TOKEN": "${FIXTURE_SECRET}"},
        }],
        "servers": [{"name": "vs", "upstreams": ["local"]}],
    }
    config.write_text("teams: [{name: ops}]\nunknown: 1\n")
    port = free_port()
    command = [sys.executable, "-m", "bastion", "serve", "--port", str(port), "--config", str(config), "--config-poll", "0.2"]
    refused = subprocess.run(command, env=_serve_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "unknown: Extra inputs are not permitted" in refused.stderr

    config.write_text(yaml.safe_dump(document))
    proc = subprocess.Popen(command, env=_serve_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with httpx2.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as api:
            # A hang guard: the child's start (imports, migrations) took 24 s with 16 busy processes on 2 cores.
            with anyio.fail_after(120):
                while True:
                    try:
                        if (await api.get("/healthz")).status_code == 200:
                            break
                    except httpx2.TransportError:
                        await anyio.sleep(0.1)  # no event says the child is listening
            state = (await api.get("/api/v1/config")).json()
            assert [u["name"] for u in state["upstreams"]] == ["local"] and [s["name"] for s in state["servers"]] == ["vs"]

            async def teams_become(names: list[str]) -> None:
                with anyio.fail_after(20):
                    while [t["name"] for t in (await api.get("/api/v1/config")).json()["teams"]] != names:
                        await anyio.sleep(0.1)  # the reload runs in the child; nothing to wait on here

            # SIGHUP: the file changed with its modification time kept, so only the signal can tell.
            stamp = config.stat()
            document["teams"] = [{"name": "ops"}]
            staged = tmp_path / "staged.yaml"  # replaced in one step: the poll never sees another time
            staged.write_text(yaml.safe_dump(document))
            os.utime(staged, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
            os.replace(staged, config)
            proc.send_signal(signal.SIGHUP)
            await teams_become(["ops"])

            document["teams"] = [{"name": "ops"}, {"name": "sre"}]  # a plain edit: the poll sees it
            config.write_text(yaml.safe_dump(document))
            os.utime(config, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
            await teams_become(["ops", "sre"])

            config.write_text("servers: [{name: vs, colour: red}]\n")  # wrong: logged, nothing changes
            proc.send_signal(signal.SIGHUP)
            assert (await api.get("/healthz")).status_code == 200
            assert [t["name"] for t in (await api.get("/api/v1/config")).json()["teams"]] == ["ops", "sre"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def test_pins_follow_the_document(gateway: Running, upstream: HttpUpstream) -> None:
    await gateway.register(upstream.body("remote"))  # pin: block; the admin's registration approved its catalog
    document = await export(gateway)
    approved = document["upstreams"][0]["approved"]
    assert "tool:echo" in approved and "prompt:greet" in approved

    # A site whose file approved another definition of echo: echo waits for an admin, and is held.
    echo_hash = approved["tool:echo"]
    approved["tool:echo"] = "0" * 64
    changed = await import_(gateway, document)
    assert [a["line"] for a in changed["actions"]] == ["~ upstream remote (approved)"]
    pending = await ok(await gateway.api.get("/api/v1/approvals"))
    assert [(a["key"], a["held"]) for a in pending["items"]] == [("echo", True)] and pending["quarantined"] == 1

    original = (await export(gateway))["upstreams"][0]["approved"]
    assert "tool:echo" not in original  # the old approval was dropped: a second import plans nothing
    del approved["tool:echo"]
    assert (await import_(gateway, document))["actions"] == []

    approved["tool:echo"] = echo_hash  # approving it in the file is approving it
    again = await import_(gateway, document)
    assert [a["line"] for a in again["actions"]] == ["~ upstream remote (approved)"]
    assert (await ok(await gateway.api.get("/api/v1/approvals")))["items"] == []
