"""Tokens from an external OpenID Connect provider on the MCP endpoints: a real identity provider on
loopback (discovery document + JWKS, keys it can rotate) signs access tokens; Bastion verifies them
and refuses every forgery with 401 and a challenge that points at its resource metadata."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.e2e.test_token_scopes import INITIALIZE, MCP_HEADERS
from tests.harness import TOKEN, Running, serve, serve_asgi, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio



@dataclass
class IdentityProvider:
    """A minimal but real OIDC provider: it publishes its keys and signs tokens with them."""

    url: str = ""
    keys: dict[str, Any] = field(default_factory=dict)
    published: list[str] = field(default_factory=list)

    def add_key(self, kid: str, kind: str = "ec") -> None:
        key = ec.generate_private_key(ec.SECP256R1()) if kind == "ec" else rsa.generate_private_key(65537, 2048)
        self.keys[kid] = key
        self.published.append(kid)

    def jwks(self) -> dict[str, Any]:
        entries = []
        for kid in self.published:
            key = self.keys[kid]
            algorithm = jwt.algorithms.ECAlgorithm if isinstance(key, ec.EllipticCurvePrivateKey) else jwt.algorithms.RSAAlgorithm
            entry = algorithm.to_jwk(key.public_key(), as_dict=True)
            entries.append({**entry, "kid": kid, "use": "sig", "alg": "ES256" if algorithm is jwt.algorithms.ECAlgorithm else "RS256"})
        return {"keys": entries}

    def token(self, audience: Any, *, kid: str = "ec1", **overrides: Any) -> str:
        now = int(time.time())
        claims = {"iss": self.url, "sub": "u-123", "aud": audience, "iat": now, "exp": now + 300, "scope": "mcp openid"}
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        key = self.keys[kid]
        algorithm = "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS256"
        return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})

    def app(self) -> Starlette:
        async def discovery(_: Request) -> JSONResponse:
            return JSONResponse({"issuer": self.url, "jwks_uri": f"{self.url}/jwks"})

        async def jwks(_: Request) -> JSONResponse:
            return JSONResponse(self.jwks())

        return Starlette(
            routes=[Route("/.well-known/openid-configuration", discovery), Route("/jwks", jwks)]
        )


@dataclass
class Setup:
    gateway: Running
    idp: IdentityProvider

    def audience(self, server: str) -> str:
        return f"{self.gateway.bastion.settings.base_url}/servers/{server}/mcp"

    async def initialize(self, server: str, token: str | None) -> httpx2.Response:
        headers = dict(MCP_HEADERS)
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        async with httpx2.AsyncClient(timeout=30) as http:
            return await http.post(self.gateway.mcp_url(server), json=INITIALIZE, headers=headers)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    idp = IdentityProvider()
    idp.add_key("ec1")
    idp.add_key("rsa1", "rsa")
    async with serve_asgi(idp.app()) as url:
        idp.url = url
        settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", oidc_issuer=url, oidc_jwks_refetch=0)
        async with serve(settings) as gateway:
            await gateway.register(stdio_fixture("fx"))
            await gateway.create_server({"name": "vs1", "upstreams": ["fx"], "visibility": "public"})
            await gateway.create_server({"name": "vs2", "upstreams": ["fx"], "visibility": "public"})
            yield Setup(gateway, idp)


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
@pytest.mark.parametrize("kid", ["ec1", "rsa1"])
async def test_a_token_for_a_virtual_server_works_there(setup: Setup, mode: str, kid: str) -> None:
    token = setup.idp.token(setup.audience("vs1"), kid=kid)
    async with setup.gateway.client("vs1", mode=mode, token=token) as client:
        assert (await client.call_tool("fx__echo", {"text": "idp"})).content[0].text == "idp"


async def test_a_token_for_one_virtual_server_is_refused_by_another(setup: Setup) -> None:
    response = await setup.initialize("vs2", setup.idp.token(setup.audience("vs1")))
    assert response.status_code == 403


async def test_without_a_token_the_challenge_points_at_the_resource_metadata(setup: Setup) -> None:
    response = await setup.initialize("vs1", None)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    metadata_url = f"{setup.gateway.bastion.settings.base_url}/.well-known/oauth-protected-resource/servers/vs1/mcp"
    assert challenge.startswith("Bearer ")
    assert f'resource_metadata="{metadata_url}"' in challenge and 'scope="mcp"' in challenge
    assert "error=" not in challenge


def _forgeries(setup: Setup) -> dict[str, str]:
    idp, audience = setup.idp, setup.audience("vs1")
    stranger = ec.generate_private_key(ec.SECP256R1())
    public_pem = idp.keys["rsa1"].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = {"iss": idp.url, "sub": "u", "aud": audience, "exp": int(time.time()) + 300, "scope": "mcp"}
    return {
        "expired": idp.token(audience, exp=int(time.time()) - 3600),
        "wrong audience": idp.token("https://elsewhere.example/mcp"),
        "wrong issuer": idp.token(audience, iss="https://evil.example"),
        "no subject": idp.token(audience, sub=None),
        "bad signature": jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": "ec1"}),
        "alg none": jwt.encode(claims, None, algorithm="none", headers={"kid": "ec1"}),
        "hmac with the public key": _hmac_forgery(claims, public_pem),
        "unknown key": jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": "nobody"}),
        "garbage": "not.a.jwt",
    }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hmac_forgery(claims: dict[str, Any], secret: bytes) -> str:
    """The classic key-confusion forgery, built by hand (libraries refuse to make it): HS256
    "signed" with the provider's public key, which anyone can download."""
    signing_input = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa1"}).encode()) + "." + _b64(json.dumps(claims).encode())
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


async def test_every_forged_or_foreign_token_is_refused_with_invalid_token(setup: Setup) -> None:
    for name, token in _forgeries(setup).items():
        response = await setup.initialize("vs1", token)
        assert response.status_code == 401, name
        assert 'error="invalid_token"' in response.headers["www-authenticate"], name
        assert token not in response.text, name  # the token is never echoed


async def test_a_token_whose_algorithm_does_not_fit_its_key_is_refused(setup: Setup) -> None:
    # A provider may publish keys without "alg": an RS256 header naming an EC key must be a 401, not a 500.
    published = setup.idp.jwks()
    setup.idp.jwks = lambda: {"keys": [{k: v for k, v in key.items() if k != "alg"} for key in published["keys"]]}  # type: ignore[method-assign]
    claims = {"iss": setup.idp.url, "sub": "u", "aud": setup.audience("vs1"), "exp": int(time.time()) + 300, "scope": "mcp"}
    token = jwt.encode(claims, setup.idp.keys["rsa1"], algorithm="RS256", headers={"kid": "ec1"})
    response = await setup.initialize("vs1", token)
    assert response.status_code == 401 and 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_token_without_the_scope_gets_insufficient_scope(setup: Setup) -> None:
    response = await setup.initialize("vs1", setup.idp.token(setup.audience("vs1"), scope="openid profile"))
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="mcp"' in challenge


async def test_keys_rotated_at_the_provider_are_picked_up(setup: Setup) -> None:
    assert (await setup.initialize("vs1", setup.idp.token(setup.audience("vs1")))).status_code == 200
    setup.idp.add_key("ec2")
    setup.idp.published.remove("ec1")
    assert (await setup.initialize("vs1", setup.idp.token(setup.audience("vs1"), kid="ec2"))).status_code == 200
    assert (await setup.initialize("vs1", setup.idp.token(setup.audience("vs1"), kid="ec1"))).status_code == 401


async def test_claims_reach_the_servers_policy(setup: Setup) -> None:
    policy = {"rules": [{"effect": "allow", "teams": ["data"], "tools": ["fx__add"]}, {"effect": "allow", "tools": ["fx__echo"]}]}
    response = await setup.gateway.api.patch("/api/v1/servers/vs1", json={"policy": policy})
    assert response.status_code == 200, response.text
    audience = setup.audience("vs1")
    async with setup.gateway.client("vs1", token=setup.idp.token(audience, groups=["data"])) as client:
        assert sorted(t.name for t in (await client.list_tools()).tools) == ["fx__add", "fx__echo"]
    async with setup.gateway.client("vs1", token=setup.idp.token(audience, groups=["web"])) as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["fx__echo"]


async def test_the_resource_metadata_names_the_provider(setup: Setup) -> None:
    base = setup.gateway.base_url
    async with httpx2.AsyncClient(base_url=base) as http:
        document = (await http.get("/.well-known/oauth-protected-resource/servers/vs1/mcp")).json()
        assert document["resource"] == setup.audience("vs1")
        assert document["authorization_servers"] == [setup.idp.url]
        assert document["scopes_supported"] == ["mcp"]
        # The same answer for a server that does not exist: strangers cannot probe for names.
        ghost = await http.get("/.well-known/oauth-protected-resource/servers/ghost/mcp")
        assert ghost.status_code == 200 and ghost.json()["resource"] == setup.audience("ghost")
        assert (await http.get("/.well-known/oauth-protected-resource/servers/Not_A_Slug/mcp")).status_code == 404


async def test_bastions_own_tokens_still_work_beside_the_provider(setup: Setup) -> None:
    assert (await setup.initialize("vs1", TOKEN)).status_code == 200


async def test_a_provider_that_cannot_be_reached_is_a_503_not_a_401(tmp_path: Path) -> None:
    idp = IdentityProvider()
    idp.add_key("ec1")
    async with serve_asgi(idp.app()) as url:
        idp.url = url
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", oidc_issuer=idp.url)
    async with serve(settings) as gateway:
        await gateway.register(stdio_fixture("fx"))
        await gateway.create_server({"name": "vs1", "upstreams": ["fx"], "visibility": "public"})
        setup = Setup(gateway, idp)
        response = await setup.initialize("vs1", idp.token(setup.audience("vs1")))
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_without_any_authorization_server_there_is_no_resource_metadata(tmp_path: Path) -> None:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", oauth_server=False)
    async with serve(settings) as gateway:
        await gateway.register(stdio_fixture("fx"))
        await gateway.create_server({"name": "vs1", "upstreams": ["fx"], "visibility": "public"})
        async with httpx2.AsyncClient(base_url=gateway.base_url) as http:
            assert (await http.get("/.well-known/oauth-protected-resource/servers/vs1/mcp")).status_code == 404
            assert (await http.get("/.well-known/oauth-authorization-server")).status_code == 401
            refused = await http.get("/api/v1/tools")
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == 'Bearer realm="bastion"'


async def test_with_a_provider_bastions_own_authorization_server_is_off(setup: Setup) -> None:
    async with httpx2.AsyncClient(base_url=setup.gateway.base_url) as http:
        assert (await http.get("/.well-known/oauth-authorization-server")).status_code == 401
        assert (await http.post("/register", json={"redirect_uris": ["http://127.0.0.1:9/cb"]})).status_code == 401
