"""Attack class: a non-admin makes the gateway host run a program of their choosing (issue 9, finding 1).

Stdio upstreams (command, args, env) are an admin capability; anyone else may launch only what an
admin allowed in BASTION_STDIO_COMMANDS, refused before anything runs and again at every connect."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests.harness import FIXTURE, Running, serve, settings_for, stdio_fixture
from tests.identity import login, make_user, signed_in

pytestmark = pytest.mark.anyio

ALLOWED = shlex.join([sys.executable, str(FIXTURE), "--transport", "stdio"])


@dataclass
class Target:
    gateway: Running
    tmp: Path
    dev: str
    """A developer's session token (team-a)."""
    dev_api: str
    """An API token the developer made for itself."""


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def target(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Target]:
    tmp = tmp_path_factory.mktemp("host-exec")
    settings = settings_for(f"sqlite+aiosqlite:///{tmp}/b.db", stdio_commands=(ALLOWED,))
    async with serve(settings) as gateway:
        await make_user(gateway, "dev@example.com", "developer", "team-a")
        dev = (await login(gateway, "dev@example.com")).json()["token"]
        async with signed_in(gateway, "dev@example.com") as client:
            made = await client.post("/api/v1/tokens", json={"name": "dev-api", "servers": "*"})
            assert made.status_code == 201, made.text
        yield Target(gateway, tmp, dev, made.json()["token"])


async def _as(target: Target, token: str, method: str, path: str, body: Any) -> httpx2.Response:
    async with httpx2.AsyncClient(base_url=target.gateway.base_url, timeout=60) as http:
        return await http.request(method, path, json=body, headers={"authorization": f"Bearer {token}"})


def _marker_command(marker: Path) -> dict[str, Any]:
    """A stdio body whose child leaves a file behind the moment it runs (then fails as an upstream)."""
    code = f"open({str(marker)!r}, 'w').write('ran')"
    return {"transport": "stdio", "command": sys.executable, "args": ["-c", code], "team": "team-a"}


def _who(target: Target, who: str) -> str:
    return target.dev if who == "session" else target.dev_api


@pytest.mark.parametrize("who", ["session", "api-token"])
async def test_a_developer_cannot_register_a_command_and_nothing_runs(target: Target, who: str) -> None:
    marker = target.tmp / f"ran-register-{who}"
    response = await _as(target, _who(target, who), "POST", "/api/v1/upstreams", {"name": f"evil-{who}", **_marker_command(marker)})
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    if who == "session":  # (API tokens cannot change configuration at all)
        assert "BASTION_STDIO_COMMANDS" in response.json()["detail"]
    assert not marker.exists(), "the command ran although registration was refused"


async def test_a_developer_cannot_patch_a_command_into_an_upstream(target: Target) -> None:
    body = {**stdio_fixture("dev-fx"), "team": "team-a"}
    created = await _as(target, target.dev, "POST", "/api/v1/upstreams", body)
    assert created.status_code == 201, created.text  # the allow-listed command itself is fine
    marker = target.tmp / "ran-patch"
    patch = {k: v for k, v in _marker_command(marker).items() if k != "team"}
    response = await _as(target, target.dev, "PATCH", "/api/v1/upstreams/dev-fx", patch)
    assert response.status_code == 403, response.text
    only_args = await _as(target, target.dev, "PATCH", "/api/v1/upstreams/dev-fx", {"args": patch["args"]})
    assert only_args.status_code == 403, only_args.text
    assert not marker.exists()


@pytest.mark.parametrize(
    "extra",
    [
        ["--eval", "1"],  # options after the allowed line could turn into code (node -e, npx pkg --eval)
        ["-c", "print(1)"],
        ["extra-positional"],  # the entry allows no further arguments (no trailing ' *')
    ],
)
async def test_a_developer_cannot_append_arguments_to_an_allowed_command(target: Target, extra: list[str]) -> None:
    body = {**stdio_fixture("dev-more"), "team": "team-a"}
    body["args"] = [*body["args"], *extra]
    response = await _as(target, target.dev, "POST", "/api/v1/upstreams", body)
    assert response.status_code == 403, response.text


@pytest.mark.parametrize("name", ["LD_PRELOAD", "PYTHONPATH", "PYTHONSTARTUP", "NODE_OPTIONS", "PATH", "BASH_ENV", "DYLD_INSERT_LIBRARIES", "ld_preload"])
async def test_a_developer_cannot_set_environment_that_changes_what_runs(target: Target, name: str) -> None:
    body = {**stdio_fixture(f"dev-env-{name.lower().replace('_', '-')}"), "team": "team-a", "env": {name: "/tmp/evil"}}
    response = await _as(target, target.dev, "POST", "/api/v1/upstreams", body)
    assert response.status_code == 403, response.text
    assert name in response.json()["detail"]


async def test_a_developer_may_set_an_ordinary_credential_variable(target: Target) -> None:
    body = {**stdio_fixture("dev-key"), "team": "team-a", "env": {"GITHUB_TOKEN": "t0ken"}}
    response = await _as(target, target.dev, "POST", "/api/v1/upstreams", body)
    assert response.status_code == 201, response.text


async def test_the_admin_still_registers_any_command(target: Target) -> None:
    marker = target.tmp / "admin-ran"
    body = {"name": "admin-cmd", **_marker_command(marker)}
    response = await target.gateway.api.post("/api/v1/upstreams", json=body)
    assert response.status_code == 502, response.text  # not an MCP server, but the admin may run it
    assert marker.exists()


async def test_a_stored_developer_command_no_longer_allowed_does_not_run_on_reconnect(target: Target) -> None:
    # Stored by a developer while the command was allowed (as before this fix, or before the admin
    # narrowed the allow-list): the next connect checks again and does not run it.
    marker = target.tmp / "ran-reconnect"
    gateway = target.gateway
    spec = gateway.bastion.gateway.upstream("dev-fx").spec
    evil = spec.model_copy(update={"args": ("-c", f"open({str(marker)!r}, 'w').write('ran')")})
    await gateway.bastion.gateway.repo.update_upstream_spec(evil)
    await gateway.bastion.gateway.reload()
    with anyio.fail_after(30):
        await gateway.bastion.gateway.refresh_upstream("dev-fx", quiet=True)
    assert not marker.exists(), "a developer's stored command ran on reconnect"
    shown = (await gateway.api.get("/api/v1/upstreams/dev-fx")).json()
    assert shown["status"] == "unhealthy"
    assert "BASTION_STDIO_COMMANDS" in (shown["status_reason"] or "")


async def test_a_child_never_sees_bastions_own_secrets(target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_VAULT_KEY", "do-not-leak-this")
    dump = target.tmp / "child-env.json"
    # The admin's command: record the environment it was given, then be the fixture upstream.
    code = (
        f"import os, json, runpy, sys; open({str(dump)!r}, 'w').write(json.dumps(dict(os.environ))); "
        f"sys.argv = [{str(FIXTURE)!r}, '--transport', 'stdio']; runpy.run_path({str(FIXTURE)!r}, run_name='__main__')"
    )
    body = {"name": "env-probe", "transport": "stdio", "command": sys.executable, "args": ["-c", code], "env": {"ONLY": "this"}}
    await target.gateway.register(body)
    seen = json.loads(dump.read_text())
    assert seen.get("ONLY") == "this"
    assert not [k for k in seen if k.startswith("BASTION_")]
    assert "do-not-leak-this" not in json.dumps(seen)


def _dumping_fixture(dump: Path) -> list[str]:
    """A stdio command that records its environment, then serves as the fixture upstream."""
    code = (
        f"import os, json, runpy, sys; open({str(dump)!r}, 'w').write(json.dumps(dict(os.environ))); "
        f"sys.argv = [{str(FIXTURE)!r}, '--transport', 'stdio']; runpy.run_path({str(FIXTURE)!r}, run_name='__main__')"
    )
    return [sys.executable, "-c", code]


async def test_wrap_gives_its_child_only_a_minimal_environment_and_what_is_named(tmp_path: Path) -> None:
    from tests.e2e.test_wrap import wrapped

    dump = tmp_path / "env.json"
    env = {"CLOUD_SECRET": "s3cret", "WANTED_KEY": "k3y", "BASTION_WRAP_TOKEN": "wrap-token"}
    options = ("--env", "WANTED_KEY", "--env", "SET_HERE=v4lue")
    async with wrapped(_dumping_fixture(dump), *options, tmp_path=tmp_path, env=env) as proc:
        async with proc.client("legacy", token="wrap-token") as client:
            await client.list_tools()
    seen = json.loads(dump.read_text())
    assert seen.get("WANTED_KEY") == "k3y"
    assert seen.get("SET_HERE") == "v4lue"
    assert "CLOUD_SECRET" not in seen, "wrap handed its whole environment to the child"
    assert not [k for k in seen if k.startswith("BASTION_")]
