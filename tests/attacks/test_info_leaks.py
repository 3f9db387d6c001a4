"""Attack class: information a caller should not get (issue 9, finding 14): secrets in stdio args and
upstream URLs shown to viewers, hashes and session ids in logs, a world-readable database, private
server names discoverable without a token, and a foreign Host header served (DNS rebinding)."""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from tests.harness import TOKEN, Running, http_fixture, serve, settings_for, stdio_fixture
from tests.identity import PASSWORD, login, make_user

pytestmark = pytest.mark.anyio



@dataclass
class Target:
    gateway: Running
    tmp: Path
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def target(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Target]:
    tmp = tmp_path_factory.mktemp("leaks")
    with http_fixture() as upstream:
        settings = settings_for(f"sqlite+aiosqlite:///{tmp}/b.db", oidc_issuer=None)
        async with serve(settings) as gateway:
            body = {**stdio_fixture("fx"), "visibility": "public", "team": None}
            await gateway.register(body)
            await gateway.register({**upstream.body("web"), "url": upstream.url + "?key=sk-query-secret", "visibility": "public"})
            await gateway.create_server({"name": "vs", "upstreams": ["fx", "web"], "visibility": "public"})
            await gateway.create_server({"name": "hidden-plans", "upstreams": ["fx"], "visibility": "private"})
            await make_user(gateway, "viewer@example.com", "viewer")
            await make_user(gateway, "dev-b@example.com", "developer", "team-b")
            tokens = {e: (await login(gateway, e)).json()["token"] for e in ("viewer@example.com", "dev-b@example.com")}
            yield Target(gateway, tmp, tokens)


async def _get(target: Target, path: str, token: str | None, **headers: str) -> httpx2.Response:
    sent = dict(headers)
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    async with httpx2.AsyncClient(base_url=target.gateway.base_url, timeout=30) as http:
        return await http.get(path, headers=sent)


@pytest.mark.parametrize("who", ["viewer@example.com", "dev-b@example.com"])
async def test_args_and_urls_are_hidden_from_those_who_may_not_edit_the_upstream(target: Target, who: str) -> None:
    token = target.tokens[who]
    for path in ("/api/v1/upstreams/fx", "/api/v1/upstreams/web"):
        shown = (await _get(target, path, token)).json()
        assert shown["args"] is None and shown["url"] is None and shown["command"] is None, shown
    listed = (await _get(target, "/api/v1/upstreams", token)).json()["items"]
    assert "sk-query-secret" not in str(listed)
    assert all(u["args"] is None for u in listed)


async def test_the_admin_still_sees_args_and_urls(target: Target) -> None:
    shown = (await target.gateway.api.get("/api/v1/upstreams/web")).json()
    assert shown["url"].endswith("?key=sk-query-secret")
    assert (await target.gateway.api.get("/api/v1/upstreams/fx")).json()["args"]


async def test_logs_carry_no_hashes_session_ids_or_outbound_urls(target: Target, caplog: pytest.LogCaptureFixture) -> None:
    from bastion.telemetry.logging import configure_logging

    configure_logging("DEBUG")
    gateway = target.gateway
    with caplog.at_level(logging.DEBUG):
        made = await gateway.api.post("/api/v1/tokens", json={"name": "t", "servers": "*"})
        assert (await login(gateway, "viewer@example.com")).status_code == 200
        async with gateway.client("vs") as client:
            await client.call_tool("web__echo", {"text": "hi"})
        async with gateway.client("vs", mode="2026-07-28") as client:
            await client.call_tool("web__echo", {"text": "hi"})
        assert (await gateway.api.get("/metrics")).status_code == 200  # every call's log line is out
    from bastion.auth.tokens import hash_token

    text = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert hash_token(made.json()["token"]) not in text
    assert "$argon2" not in text and PASSWORD not in text
    assert "sk-query-secret" not in text, [r.getMessage() for r in caplog.records if "sk-query-secret" in r.getMessage()][:3]
    info = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert not [r for r in info if r.name.split(".")[0] in ("httpx", "httpx2", "httpcore", "httpcore2")], "HTTP client logs URLs at INFO"
    assert not [r.getMessage() for r in info if re.search(r"session[ _-]?id", r.getMessage(), re.IGNORECASE)]


@pytest.mark.sqlite
async def test_the_database_file_is_private_to_its_owner(tmp_path: Path) -> None:
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/fresh.db")) as gateway:
        await gateway.api.post("/api/v1/teams", json={"name": "t"})  # some writes: the -wal file exists
        files = sorted(tmp_path.glob("fresh.db*"))
        assert {p.name for p in files} >= {"fresh.db", "fresh.db-wal"}
        for path in files:
            mode = stat.S_IMODE(os.stat(path).st_mode)
            assert mode & 0o077 == 0, f"{path.name} is {oct(mode)}"


async def test_resource_metadata_does_not_tell_which_servers_exist(target: Target) -> None:
    existing = await _get(target, "/.well-known/oauth-protected-resource/servers/hidden-plans/mcp", None)
    missing = await _get(target, "/.well-known/oauth-protected-resource/servers/no-such-server/mcp", None)
    assert existing.status_code == missing.status_code
    assert existing.json().keys() == missing.json().keys()


async def test_an_unauthenticated_mcp_request_gets_the_same_401_for_private_and_missing_servers(target: Target) -> None:
    async with httpx2.AsyncClient(timeout=30) as http:
        existing = await http.post(target.gateway.mcp_url("hidden-plans"), json={})
        missing = await http.post(target.gateway.mcp_url("no-such-server"), json={})
    assert existing.status_code == missing.status_code == 401
    strip = lambda r: r.headers["www-authenticate"].replace("hidden-plans", "X").replace("no-such-server", "X")  # noqa: E731
    assert strip(existing) == strip(missing)
    assert existing.json()["detail"] == missing.json()["detail"]


@pytest.mark.parametrize("path", ["/api/v1/upstreams", "/servers/vs/mcp", "/.well-known/oauth-protected-resource/servers/vs/mcp"])
async def test_a_foreign_host_header_is_misdirected(target: Target, path: str) -> None:
    response = await _get(target, path, TOKEN, host="evil.example")
    assert response.status_code == 421, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1:9", "[::1]:4444"])
async def test_local_host_names_are_served(target: Target, host: str) -> None:
    assert (await _get(target, "/api/v1/upstreams", TOKEN, host=host)).status_code == 200


async def test_probes_answer_whatever_the_host(target: Target) -> None:
    for path in ("/healthz", "/readyz"):
        assert (await _get(target, path, None, host="10.1.2.3:4444")).status_code == 200
