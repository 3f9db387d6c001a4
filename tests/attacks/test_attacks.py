"""The attack suite: one running Bastion (with a trusted identity provider), and every attack a real
HTTP request that must be refused with the right status. Each row names the attack; the detailed
behaviour behind each refusal is tested beside its feature (tests/auth, tests/rest, tests/e2e, tests/vault)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text

from tests.auth.test_oidc import IdentityProvider, _hmac_forgery
from tests.e2e.test_token_scopes import INITIALIZE, MCP_HEADERS, create_token
from tests.harness import TOKEN, Running, serve, serve_asgi, settings_for, stdio_fixture
from tests.identity import login, make_user, signed_in

pytestmark = pytest.mark.anyio


@dataclass
class Target:
    gateway: Running
    idp: IdentityProvider
    tokens: dict[str, str]

    def audience(self, server: str) -> str:
        return f"{self.gateway.bastion.settings.base_url}/servers/{server}/mcp"

    async def mcp(self, server: str, token: str | None, **headers: str) -> httpx2.Response:
        sent = {**MCP_HEADERS, **headers}
        if token is not None:
            sent["authorization"] = f"Bearer {token}"
        async with httpx2.AsyncClient(timeout=30) as http:
            return await http.post(self.gateway.mcp_url(server), json=INITIALIZE, headers=sent)

    async def rest(self, method: str, path: str, token: str, body: object = None) -> httpx2.Response:
        async with httpx2.AsyncClient(base_url=self.gateway.base_url, timeout=30) as http:
            return await http.request(method, path, json=body, headers={"authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def target(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Target]:
    tmp: Path = tmp_path_factory.mktemp("attacks")
    idp = IdentityProvider()
    idp.add_key("ec1")
    idp.add_key("rsa1", "rsa")
    async with serve_asgi(idp.app()) as url:
        idp.url = url
        settings = settings_for(f"sqlite+aiosqlite:///{tmp}/b.db", oidc_issuer=url, allow_private_upstreams=False)
        async with serve(settings) as gateway:
            await gateway.register(stdio_fixture("fx"))
            for name in ("vs1", "vs2"):
                await gateway.create_server({"name": name, "upstreams": ["fx"], "visibility": "public"})
            tokens = {
                "vs1": (await create_token(gateway, servers=["vs1"]))["token"],
                "read": (await create_token(gateway, servers="*", permissions=["read"]))["token"],
                "far": (await create_token(gateway, servers="*", ip_allow=["10.0.0.0/8"]))["token"],
            }
            revoked = await create_token(gateway, servers="*")
            assert (await gateway.api.delete(f"/api/v1/tokens/{revoked['id']}")).status_code == 204
            tokens["revoked"] = revoked["token"]
            expired = await create_token(gateway, servers="*")
            async with gateway.bastion.engine.begin() as conn:  # expired in the store, as time would
                await conn.execute(
                    text("UPDATE api_tokens SET expires_at = :past WHERE id = :id"),
                    {"past": datetime(2020, 1, 1, tzinfo=UTC), "id": expired["id"]},
                )
            tokens["expired"] = expired["token"]
            await make_user(gateway, "viewer@example.com", "viewer")
            await make_user(gateway, "dev-a@example.com", "developer", "team-a")
            await make_user(gateway, "dev-b@example.com", "developer", "team-b")
            for email in ("viewer@example.com", "dev-a@example.com"):
                tokens[email] = (await login(gateway, email)).json()["token"]
            async with signed_in(gateway, "dev-b@example.com") as dev_b:
                body = {**stdio_fixture("secretb"), "team": "team-b", "visibility": "private"}
                assert (await dev_b.post("/api/v1/upstreams", json=body)).status_code == 201
            yield Target(gateway, idp, tokens)


def _jwt(target: Target, **claims: object) -> str:
    return target.idp.token(target.audience("vs1"), **claims)


def _stranger_signed(target: Target) -> str:
    claims = {"iss": target.idp.url, "sub": "u", "aud": target.audience("vs1"), "exp": int(time.time()) + 60, "scope": "mcp"}
    return jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": "ec1"})


def _alg_none(target: Target) -> str:
    claims = {"iss": target.idp.url, "sub": "u", "aud": target.audience("vs1"), "exp": int(time.time()) + 60, "scope": "mcp"}
    return jwt.encode(claims, None, algorithm="none", headers={"kid": "ec1"})


def _key_confusion(target: Target) -> str:
    from cryptography.hazmat.primitives import serialization

    pem = target.idp.keys["rsa1"].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = {"iss": target.idp.url, "sub": "u", "aud": target.audience("vs1"), "exp": int(time.time()) + 60, "scope": "mcp"}
    return _hmac_forgery(claims, pem)


Attack = Callable[[Target], Awaitable[httpx2.Response]]
MCP_ATTACKS: list[tuple[str, Attack, int]] = [
    ("no token", lambda t: t.mcp("vs1", None), 401),
    ("not a bearer token", lambda t: t.mcp("vs1", None, authorization=f"Basic {TOKEN}"), 401),
    ("unknown token", lambda t: t.mcp("vs1", "bst_" + "x" * 43), 401),
    ("expired API token", lambda t: t.mcp("vs1", t.tokens["expired"]), 401),
    ("revoked API token", lambda t: t.mcp("vs1", t.tokens["revoked"]), 401),
    ("API token for another virtual server", lambda t: t.mcp("vs2", t.tokens["vs1"]), 403),
    ("API token without the mcp permission", lambda t: t.mcp("vs1", t.tokens["read"]), 403),
    ("API token from outside its allowed networks", lambda t: t.mcp("vs1", t.tokens["far"]), 403),
    ("expired JWT", lambda t: t.mcp("vs1", _jwt(t, exp=int(time.time()) - 3600)), 401),
    ("JWT with a foreign audience", lambda t: t.mcp("vs1", t.idp.token("https://other.example/mcp")), 401),
    ("JWT for another virtual server", lambda t: t.mcp("vs2", _jwt(t)), 403),
    ("JWT from another issuer", lambda t: t.mcp("vs1", _jwt(t, iss="https://evil.example")), 401),
    ("JWT signed by someone else", lambda t: t.mcp("vs1", _stranger_signed(t)), 401),
    ("JWT with alg none", lambda t: t.mcp("vs1", _alg_none(t)), 401),
    ("JWT HMAC-signed with the provider's public key", lambda t: t.mcp("vs1", _key_confusion(t)), 401),
    ("JWT without the mcp scope", lambda t: t.mcp("vs1", _jwt(t, scope="openid")), 403),
    ("request from a foreign web page", lambda t: t.mcp("vs1", TOKEN, origin="https://evil.example"), 403),
]
REST_ATTACKS: list[tuple[str, Attack, int]] = [
    ("viewer writing configuration", lambda t: t.rest("DELETE", "/api/v1/upstreams/fx", t.tokens["viewer@example.com"]), 403),
    ("viewer minting an MCP token", lambda t: t.rest("POST", "/api/v1/tokens", t.tokens["viewer@example.com"], {"name": "x", "servers": "*"}), 403),
    ("viewer managing users", lambda t: t.rest("GET", "/api/v1/users", t.tokens["viewer@example.com"]), 403),
    ("team A reading team B's private upstream", lambda t: t.rest("GET", "/api/v1/upstreams/secretb", t.tokens["dev-a@example.com"]), 404),
    ("team A deleting team B's private upstream", lambda t: t.rest("DELETE", "/api/v1/upstreams/secretb", t.tokens["dev-a@example.com"]), 404),
    ("developer promoting itself", lambda t: t.rest("PATCH", "/api/v1/users/dev-a@example.com", t.tokens["dev-a@example.com"], {"role": "admin"}), 403),
    ("read token writing configuration", lambda t: t.rest("DELETE", "/api/v1/upstreams/fx", t.tokens["read"]), 403),
    ("read token minting tokens", lambda t: t.rest("POST", "/api/v1/tokens", t.tokens["read"], {"name": "x"}), 403),
    ("read token rotating the vault", lambda t: t.rest("POST", "/api/v1/vault/rotate", t.tokens["read"]), 403),
    (
        "upstream URL aimed at the cloud metadata service",
        lambda t: t.rest("POST", "/api/v1/upstreams", TOKEN, {"name": "meta", "transport": "streamable-http", "url": "http://169.254.169.254/mcp"}),
        403,
    ),
    (
        "upstream URL aimed at the gateway's own loopback",
        lambda t: t.rest("POST", "/api/v1/upstreams", TOKEN, {"name": "self", "transport": "streamable-http", "url": f"{t.gateway.base_url}/mcp"}),
        403,
    ),
]


@pytest.mark.parametrize(("attack", "status"), [(a, s) for _, a, s in MCP_ATTACKS + REST_ATTACKS], ids=[n for n, _, _ in MCP_ATTACKS + REST_ATTACKS])
async def test_attack_is_refused(target: Target, attack: Attack, status: int) -> None:
    response = await attack(target)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "Traceback" not in response.text
    for secret in target.tokens.values():
        assert secret not in response.text


async def test_the_clients_token_never_reaches_the_upstream(target: Target) -> None:
    for token in (TOKEN, target.tokens["vs1"], _jwt(target)):
        async with target.gateway.client("vs1", token=token) as client:
            seen = json.loads((await client.call_tool("fx__whoami", {})).content[0].text)
        assert "authorization" not in {k.lower() for k in seen}
        assert token not in json.dumps(seen)


async def test_an_oversized_request_is_refused_before_it_is_read_whole(target: Target) -> None:
    limit = target.gateway.bastion.settings.max_body_bytes
    body = {**INITIALIZE, "params": {**INITIALIZE["params"], "pad": "x" * (limit + 1)}}
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(
            target.gateway.mcp_url("vs1"), json=body, headers={**MCP_HEADERS, "authorization": f"Bearer {TOKEN}"}
        )
    assert response.status_code == 413
