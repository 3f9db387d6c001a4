"""Helpers for the authorization-server tests: Bastion served at a known public URL (its issuer and
its resources' URLs must be the ones clients use), a browser that signs in on the consent page, and
the SDK's OAuth client wired to that browser."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio
import httpx2
import uvicorn
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from bastion.app import running
from bastion.web.listen import listening_socket
from tests.harness import TOKEN, Running, settings_for
from tests.identity import PASSWORD

REDIRECT_URI = "http://127.0.0.1:9/callback"  # never contacted: the browser below reads the redirect


@asynccontextmanager
async def serve_public(database_url: str, public_url: str | None = None, **overrides: Any) -> AsyncIterator[Running]:
    """Bastion on a free loopback port whose public URL is that port's (or `public_url`, as for a
    replica behind the same load balancer as another)."""
    sock = listening_socket("127.0.0.1", 0)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = settings_for(database_url, public_url=public_url or base, **overrides)
    async with running(settings) as bastion, anyio.create_task_group() as tg:
        server = uvicorn.Server(uvicorn.Config(bastion.app, lifespan="off", log_level="warning"))
        tg.start_soon(server.serve, [sock])
        with anyio.fail_after(10):
            while not server.started:
                await anyio.sleep(0.01)  # uvicorn sets a flag, not an event
        try:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx2.AsyncClient(base_url=base, headers=headers, timeout=60) as api:
                yield Running(bastion, base, api)
        finally:
            server.should_exit = True


def hidden_fields(page: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page))


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@dataclass
class Browser:
    """A user at a browser: follows Bastion's redirect to the consent page and answers it."""

    email: str
    password: str = PASSWORD
    action: str = "allow"

    async def open_consent(self, http: httpx2.AsyncClient, authorize_url: str) -> tuple[str, httpx2.Response]:
        started = await http.get(authorize_url)
        assert started.status_code == 302, started.text
        consent_url = started.headers["location"]
        page = await http.get(consent_url)
        assert page.status_code == 200, page.text
        return consent_url, page

    async def authorize(self, authorize_url: str) -> httpx2.Response:
        """The consent form's answer: a redirect to the client on success."""
        async with httpx2.AsyncClient(timeout=30) as http:
            consent_url, page = await self.open_consent(http, authorize_url)
            form = {**hidden_fields(page.text), "email": self.email, "password": self.password, "action": self.action}
            return await http.post(consent_url.split("?")[0], data=form)


@dataclass
class MemoryStorage(TokenStorage):
    tokens: OAuthToken | None = None
    client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


@dataclass
class SdkClient:
    """The SDK's OAuth client for one MCP URL; its redirect handler is a `Browser`."""

    server_url: str
    browser: Browser
    storage: MemoryStorage = field(default_factory=MemoryStorage)
    result: AuthorizationCodeResult | None = None
    redirects: int = 0

    def provider(
        self, client_metadata_url: str | None = None, auth_method: str = "client_secret_post"
    ) -> OAuthClientProvider:
        metadata = OAuthClientMetadata.model_validate(
            {
                "client_name": "Bastion test client",
                "redirect_uris": [REDIRECT_URI],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": auth_method,
            }
        )
        provider = OAuthClientProvider(
            self.server_url, metadata, self.storage, redirect_handler=self._redirect, callback_handler=self._callback
        )
        if client_metadata_url is not None:
            # The SDK insists on https for metadata URLs; Bastion accepts http on loopback when the admin
            # allows private addresses, which is how this test serves the document.
            provider.context.client_metadata_url = client_metadata_url
        return provider

    async def _redirect(self, authorize_url: str) -> None:
        self.redirects += 1
        answer = await self.browser.authorize(authorize_url)
        assert answer.status_code == 303, answer.text
        params = query(answer.headers["location"])
        self.result = AuthorizationCodeResult(
            code=params.get("code", ""), state=params.get("state"), iss=params.get("iss")
        )

    async def _callback(self) -> AuthorizationCodeResult:
        assert self.result is not None
        return self.result


@dataclass
class Pkce:
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        return base64.urlsafe_b64encode(hashlib.sha256(self.verifier.encode()).digest()).decode().rstrip("=")


async def register(gateway: Running, **overrides: Any) -> dict[str, Any]:
    """A client registered by RFC 7591 dynamic registration."""
    body = {
        "client_name": "raw client",
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "client_secret_post",
        "grant_types": ["authorization_code", "refresh_token"],
        **overrides,
    }
    async with httpx2.AsyncClient(base_url=gateway.base_url) as http:
        response = await http.post("/register", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def authorize_url(gateway: Running, client: dict[str, Any], server: str, pkce: Pkce, state: str = "st4te") -> str:
    params = {
        "response_type": "code",
        "client_id": client["client_id"],
        "redirect_uri": REDIRECT_URI,
        "state": state,
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        "scope": "mcp",
        "resource": gateway.mcp_url(server),
    }
    return f"{gateway.base_url}/authorize?{urlencode(params)}"


async def token_request(gateway: Running, client: dict[str, Any], **form: str) -> httpx2.Response:
    data = {"client_id": client["client_id"], **form}
    if client.get("client_secret"):
        data["client_secret"] = client["client_secret"]
    async with httpx2.AsyncClient(base_url=gateway.base_url) as http:
        return await http.post("/token", data=data)


async def code_for(gateway: Running, client: dict[str, Any], server: str, email: str, pkce: Pkce) -> str:
    answer = await Browser(email).authorize(authorize_url(gateway, client, server, pkce))
    assert answer.status_code == 303, answer.text
    return query(answer.headers["location"])["code"]


async def tokens_for(gateway: Running, client: dict[str, Any], server: str, email: str) -> dict[str, Any]:
    pkce = Pkce()
    code = await code_for(gateway, client, server, email, pkce)
    response = await token_request(
        gateway,
        client,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT_URI,
        code_verifier=pkce.verifier,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())
