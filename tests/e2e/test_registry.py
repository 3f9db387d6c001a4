"""MCP Registry end to end: a registry server in the test serves real-shaped server.json documents;
Bastion caches its listing, searches it, installs entries as upstreams, and serves its own v0.1 API."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.harness import FIXTURE, HttpUpstream, Running, http_fixture, serve_asgi
from tests.identity import make_user, signed_in
from tests.upstreams.registry_server import load_documents, registry_app

pytestmark = pytest.mark.anyio
REMOTE = "io.github.bastion-tests/fixture-remote"
EVERYTHING_ENTRY = "io.github.modelcontextprotocol/everything"


def local_package(package: Mapping[str, Any]) -> tuple[str, list[str]]:
    """Tests run no npx (no network): the npm package runs as the local fixture upstream. The entry's
    package argument `stdio` lands after `--transport`, so the fixture is started exactly as declared."""
    assert package["registryType"] == "npm"
    return sys.executable, [str(FIXTURE), "--transport"]


@pytest.fixture
def upstream() -> Iterator[HttpUpstream]:
    with http_fixture("streamable-http") as running:
        yield running


@pytest.fixture
async def registry(upstream: HttpUpstream) -> AsyncIterator[str]:
    async with serve_asgi(registry_app(load_documents(upstream.url))) as url:
        yield url


async def add_source(gateway: Running, url: str, name: str = "acme") -> dict[str, Any]:
    response = await gateway.api.post("/api/v1/registries", json={"name": name, "url": url})
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_remote_entry_is_installed_with_its_secret_header_and_called(gateway: Running, registry: str) -> None:
    source = await add_source(gateway, registry)
    assert source["entries"] == 5 and source["error"] is None
    found = (await gateway.api.get("/api/v1/registries/search", params={"q": "fixture"})).json()["items"]
    assert [(e["name"], e["version"]) for e in found] == [(REMOTE, "1.1.0")]
    entry = (await gateway.api.get("/api/v1/registries/acme/entry", params={"server": REMOTE})).json()
    assert entry["versions"] == ["1.0.0", "1.1.0"]
    assert {(r["name"], r["required"], r["secret"]) for r in entry["requirements"]} == {
        ("X-Api-Key", True, True), ("X-Region", False, False)
    }

    install = {"server": REMOTE, "version": "1.0.0", "name": "remote"}
    refused = await gateway.api.post("/api/v1/registries/acme/install", json=install)
    assert refused.status_code == 400 and "header X-Api-Key" in refused.json()["detail"]
    assert (await gateway.api.get("/api/v1/upstreams/remote")).status_code == 404

    secret = "s3cr3t-fixture-key"
    response = await gateway.api.post("/api/v1/registries/acme/install", json={**install, "values": {"X-Api-Key": secret}})
    assert response.status_code == 201, response.text
    created = response.json()
    assert secret not in response.text
    assert created["transport"] == "streamable-http" and created["headers"] == {"X-Api-Key": "********", "X-Region": "********"}
    assert created["origin"] == {"source": "acme", "server": REMOTE, "version": "1.0.0"}
    assert "remote__echo" in created["discovered"]["tools"]
    updates = (await gateway.api.get("/api/v1/registries/updates")).json()["items"]
    assert updates == [{"upstream": "remote", "source": "acme", "server": REMOTE, "version": "1.0.0", "latest": "1.1.0"}]

    await gateway.create_server({"name": "vs", "upstreams": ["remote"]})
    async with gateway.client("vs") as client:
        seen = json.loads((await client.call_tool("remote__whoami", {})).content[0].text)
    assert seen["x-api-key"] == secret and seen["x-region"] == "eu-west-1"


async def test_an_npm_entry_becomes_a_stdio_upstream_and_is_called(gateway: Running, registry: str) -> None:
    assert gateway.bastion.registries is not None
    gateway.bastion.registries.package_command = local_package
    await add_source(gateway, registry)
    body = {"server": EVERYTHING_ENTRY, "values": {"EVERYTHING_TOKEN": "tok-123"}}
    response = await gateway.api.post("/api/v1/registries/acme/install", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["name"] == "everything" and created["transport"] == "stdio"
    assert created["args"][-2:] == ["--transport", "stdio"] and created["env"] == {"EVERYTHING_TOKEN": "********"}
    assert created["origin"]["version"] == "2025.9.25" and "tok-123" not in response.text
    await gateway.create_server({"name": "ev", "upstreams": ["everything"]})
    async with gateway.client("ev") as client:
        assert (await client.call_tool("everything__echo", {"text": "via registry"})).content[0].text == "via registry"


async def test_bad_sources_are_refused_and_nothing_is_saved(gateway: Running, tmp_path: Path, upstream: HttpUpstream) -> None:
    (tmp_path / "good.json").write_text((Path(__file__).parents[1] / "upstreams/registry/pypi-weather.json").read_text())
    (tmp_path / "broken.json").write_text(json.dumps({"name": "no-slash", "version": "1", "description": "x"}))
    refused = await gateway.api.post("/api/v1/registries", json={"name": "local", "path": str(tmp_path)})
    assert refused.status_code == 400 and "broken.json" in refused.json()["detail"] and "'name'" in refused.json()["detail"]
    (tmp_path / "broken.json").unlink()
    added = await gateway.api.post("/api/v1/registries", json={"name": "local", "path": str(tmp_path)})
    assert added.status_code == 201 and added.json()["entries"] == 1

    hang = anyio.Event()
    assert gateway.bastion.registries is not None
    gateway.bastion.registries.deadline = 0.5
    async with serve_asgi(registry_app(load_documents(upstream.url), hang=hang)) as slow:
        timed_out = await gateway.api.post("/api/v1/registries", json={"name": "slow", "url": slow})
        hang.set()
    assert timed_out.status_code == 504 and "did not answer" in timed_out.json()["detail"]
    assert [s["name"] for s in (await gateway.api.get("/api/v1/registries")).json()["items"]] == ["local"]


async def test_bastion_serves_its_virtual_servers_as_a_registry(gateway: Running, upstream: HttpUpstream) -> None:
    await gateway.register(upstream.body("fx"))
    for name in ("alpha", "beta"):
        await gateway.create_server({"name": name, "upstreams": ["fx"], "description": f"The {name} tools"})
    listed = (await gateway.api.get("/v0.1/servers")).json()
    docs = [s["server"] for s in listed["servers"]]
    assert [d["name"] for d in docs] == ["127.0.0.1/alpha", "127.0.0.1/beta"]
    remote = docs[0]["remotes"][0]  # the configured base URL (port 0 in tests) plus the server's MCP path
    assert remote["type"] == "streamable-http" and remote["url"].endswith("/servers/alpha/mcp")
    assert "fx" not in json.dumps(listed)  # no upstream detail
    one = (await gateway.api.get("/v0.1/servers/127.0.0.1/beta/versions/latest")).json()
    assert one["server"]["description"] == "The beta tools"
    paged = (await gateway.api.get("/v0.1/servers", params={"limit": "1"})).json()
    assert paged["metadata"]["nextCursor"] == "127.0.0.1/alpha"

    token = await gateway.api.post("/api/v1/tokens", json={"name": "beta-only", "servers": ["beta"], "permissions": ["mcp"]})
    assert token.status_code == 201, token.text
    headers = {"Authorization": f"Bearer {token.json()['token']}"}
    mine = (await gateway.api.get("/v0.1/servers", headers=headers)).json()
    assert [s["server"]["name"] for s in mine["servers"]] == ["127.0.0.1/beta"]
    hidden = await gateway.api.get("/v0.1/servers/127.0.0.1/alpha/versions/latest", headers=headers)
    assert hidden.status_code == 404


async def test_the_registry_cli_adds_searches_and_installs_asking_for_the_secret(gateway: Running, registry: str) -> None:
    from click.testing import CliRunner

    from bastion.cli.main import cli
    from tests.harness import TOKEN

    async def run(*args: str, stdin: str | None = None) -> Any:
        env = {"BASTION_URL": gateway.base_url, "BASTION_TOKEN": TOKEN, "NO_PROXY": "127.0.0.1,localhost"}
        return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli, list(args), env=env, input=stdin))

    added = await run("registry", "add", "acme", registry)
    assert added.exit_code == 0, added.output
    found = await run("registry", "search", "fixture")
    assert REMOTE in found.output and "streamable-http" in found.output
    secret = "typed-not-echoed"
    installed = await run("registry", "install", "acme", REMOTE, "--name", "cli-remote", stdin=f"{secret}\n")
    assert installed.exit_code == 0, installed.output
    assert "X-Api-Key (header)" in installed.output and secret not in installed.output
    assert "Installed io.github.bastion-tests/fixture-remote 1.1.0 as upstream cli-remote" in installed.output
    upstream = (await gateway.api.get("/api/v1/upstreams/cli-remote")).json()
    assert upstream["origin"]["version"] == "1.1.0"
    missing = await run("registry", "install", "acme", "io.github.nobody/nothing")
    assert missing.exit_code == 1 and "lists no server" in missing.output


async def test_a_developer_installing_a_package_entry_is_refused_before_anything_runs(
    gateway: Running, registry: str, tmp_path: Path
) -> None:
    # A registry package is a command the host would run: a developer may install one only where
    # BASTION_STDIO_COMMANDS allows it, refused upfront (403) like `POST /api/v1/upstreams`.
    ran = tmp_path / "ran"

    def marking_package(package: Mapping[str, Any]) -> tuple[str, list[str]]:
        return sys.executable, ["-c", f"open({str(ran)!r}, 'w').close()", "--transport"]

    assert gateway.bastion.registries is not None
    gateway.bastion.registries.package_command = marking_package
    await add_source(gateway, registry)
    await make_user(gateway, "dev@example.com", "developer", "team-a")
    async with signed_in(gateway, "dev@example.com") as dev:
        body = {"server": EVERYTHING_ENTRY, "values": {"EVERYTHING_TOKEN": "tok-123"}, "team": "team-a"}
        response = await dev.post("/api/v1/registries/acme/install", json=body)
        assert response.status_code == 403, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "only an admin may run this command" in response.json()["detail"]
        remote = await dev.post("/api/v1/registries/acme/install", json={"server": REMOTE, "values": {"X-Api-Key": "k"}, "team": "team-a"})
        assert remote.status_code == 201, remote.text  # remotes run nothing on the host: allowed
    assert (await gateway.api.get("/api/v1/upstreams/everything")).status_code == 404
    assert not ran.exists()


async def test_a_developer_installs_an_entry_only_with_pin_block(gateway: Running, registry: str) -> None:
    # As for `POST /api/v1/upstreams`: only an admin approves changes, so only an admin may install an
    # entry whose changes would go live unapproved (`pin` warn or off).
    await add_source(gateway, registry)
    await make_user(gateway, "dev@example.com", "developer", "team-a")
    body = {"server": REMOTE, "values": {"X-Api-Key": "k"}, "team": "team-a"}
    async with signed_in(gateway, "dev@example.com") as dev:
        for weaker in ("off", "warn"):
            refused = await dev.post("/api/v1/registries/acme/install", json={**body, "name": f"r-{weaker}", "pin": weaker})
            assert refused.status_code == 403, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert "only an admin may register" in refused.json()["detail"]
            assert (await gateway.api.get(f"/api/v1/upstreams/r-{weaker}")).status_code == 404
        blocked = await dev.post("/api/v1/registries/acme/install", json={**body, "name": "r-block", "pin": "block"})
        assert blocked.status_code == 201 and blocked.json()["pin"] == "block"
    admins = await gateway.api.post("/api/v1/registries/acme/install", json={**body, "name": "r-admin", "pin": "off"})
    assert admins.status_code == 201 and admins.json()["pin"] == "off"
