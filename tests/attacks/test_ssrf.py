"""Attack class: server-side request forgery. Bastion is made to send a request to an address its
SSRF rules forbid: by an allowed upstream's redirect, by a URL other than the upstream's (an OAuth
token endpoint), by a name that does not resolve or that resolves elsewhere when connecting. Every
outbound fetch goes through `bastion.outbound`, which checks the address it connects to.

127.0.0.2 plays the internet (allowed by BASTION_UPSTREAM_ALLOWED_NETWORKS), 127.0.0.1 the internal
network; an internal recorder answers like a friendly MCP server, so a request that reached it
would be relayed. Each test asserts the recorder saw nothing."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import anyio
import httpx2
import pytest
from mcp import MCPError
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.core.grants import parse_networks
from bastion.outbound import AddressRefused, FetchFailed, Outbound, Rules
from tests.attacks.network import INTERNAL, PUBLIC, SECRET, answering, header, internal, public_upstream, strict_gateway
from tests.auth.oauth_client import Pkce, authorize_url, serve_public
from tests.harness import stdio_fixture

pytestmark = pytest.mark.anyio


async def test_an_upstream_redirect_to_the_internal_network_is_not_followed(tmp_path: Path) -> None:
    async with internal() as inside:

        async def redirect(scope: Scope) -> Response | None:
            if scope["method"] == "POST" and header(scope, "mcp-method") == "tools/call":
                return Response(status_code=307, headers={"location": f"{inside.url}/mcp"})
            return None

        async with public_upstream(answering(redirect)) as url, strict_gateway(tmp_path) as gateway:
            await gateway.register(
                {"name": "pub", "transport": "streamable-http", "url": url, "headers": {"x-api-key": "sealed-key-1"}}
            )
            await gateway.create_server({"name": "vs", "upstreams": ["pub"], "visibility": "public"})
            async with gateway.client("vs", mode="2026-07-28") as client:
                with anyio.fail_after(20):
                    try:
                        result = await client.call_tool("pub__echo", {"text": "hi"})
                        outcome = str(result.content)
                    except MCPError as exc:
                        outcome = exc.message
    assert inside.hits == [], "Bastion followed the redirect into the internal network"
    assert SECRET not in outcome
    assert "redirect" in outcome


async def test_an_upstream_token_url_on_the_internal_network_is_refused(tmp_path: Path) -> None:
    async with internal() as inside, public_upstream() as url, strict_gateway(tmp_path) as gateway:
        auth = {"type": "oauth_client_credentials", "token_url": f"{inside.url}/token", "client_id": "c", "client_secret": "s"}
        with anyio.fail_after(30):
            response = await gateway.api.post(
                "/api/v1/upstreams", json={"name": "pub", "transport": "streamable-http", "url": url, "auth": auth}
            )
    assert inside.hits == [], "Bastion posted client credentials to an internal address"
    assert response.status_code == 403, response.text


async def test_a_per_user_token_url_on_the_internal_network_is_refused(tmp_path: Path) -> None:
    async with internal() as inside, public_upstream() as url, strict_gateway(tmp_path) as gateway:
        auth = {
            "type": "oauth_user",
            "authorization_url": f"http://{PUBLIC}/authorize",
            "token_url": f"{inside.url}/token",
            "client_id": "c",
        }
        body = {"name": "pub", "transport": "streamable-http", "url": url, "auth": auth, "isolation": "per_user"}
        response = await gateway.api.post("/api/v1/upstreams", json=body)
    assert response.status_code == 403, response.text
    assert inside.hits == []


async def test_a_name_that_does_not_resolve_is_refused(tmp_path: Path) -> None:
    async with strict_gateway(tmp_path) as gateway:
        body = {"name": "nowhere", "transport": "streamable-http", "url": "http://no-such-host.invalid/mcp"}
        response = await gateway.api.post("/api/v1/upstreams", json=body)
    assert response.status_code == 403, response.text
    assert "does not resolve" in response.json()["detail"]


async def test_a_name_that_rebinds_to_an_internal_address_is_not_connected() -> None:
    """The check and the connection use one resolution: a name that answered a public address when
    it was checked and an internal one a moment later is refused, not connected."""
    answers = [[PUBLIC], [INTERNAL]]

    async def rebinding(host: str, port: int) -> list[str]:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    async with internal() as inside:
        port = int(inside.url.rsplit(":", 1)[1])
        outbound = Outbound(Rules(allow_private=False, allowed=parse_networks([f"{PUBLIC}/32"])), resolve=rebinding)
        await outbound.check(f"http://rebind.test:{port}/")  # the first answer: allowed
        async with outbound.client() as http:
            with pytest.raises(httpx2.ConnectError):
                await http.get(f"http://rebind.test:{port}/")
        with pytest.raises(AddressRefused):
            await outbound.check(f"http://rebind.test:{port}/")
        async with outbound.aiohttp_session(connect_timeout=5) as fast:  # the lean 2026-07-28 path
            for url in (f"http://rebind.test:{port}/", f"{inside.url}/"):  # a name, and an address literal
                with pytest.raises(aiohttp.ClientConnectorError):
                    await fast.post(url, data=b"{}")
        await outbound.aclose()
    assert inside.hits == []


async def test_a_redirect_within_the_upstreams_own_origin_is_still_followed(tmp_path: Path) -> None:
    """What the SDK's transports follow (307/308 on the same origin), the lean path follows too."""

    def moved(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"] == "/mcp" and header(scope, "mcp-method") == "tools/call":
                await Response(status_code=308, headers={"location": "/v2/mcp"})(scope, receive, send)
                return
            if scope["type"] == "http" and scope["path"] == "/v2/mcp":
                scope = {**scope, "path": "/mcp", "raw_path": b"/mcp"}
            await app(scope, receive, send)

        return wrapped

    async with public_upstream(moved) as url, strict_gateway(tmp_path) as gateway:
        await gateway.register({"name": "pub", "transport": "streamable-http", "url": url})
        await gateway.create_server({"name": "vs", "upstreams": ["pub"], "visibility": "public"})
        async with gateway.client("vs", mode="2026-07-28") as client:
            result = await client.call_tool("pub__echo", {"text": "moved"})
    assert result.content[0].text == "moved"  # type: ignore[union-attr]


async def test_a_refused_untrusted_fetch_says_the_same_whatever_the_reason() -> None:
    """Error texts are no port scanner: a closed port, a forbidden address and a missing name read alike."""
    outbound = Outbound(Rules(allow_private=False, allowed=parse_networks([f"{PUBLIC}/32"])))
    messages = set()
    for url in (f"http://{PUBLIC}:1/doc", f"http://{INTERNAL}:1/doc", "http://no-such-host.invalid/doc"):
        with pytest.raises(FetchFailed) as caught:
            await outbound.fetch(url, untrusted=True)
        messages.add(str(caught.value))
    assert len(messages) == 1, messages


async def test_a_client_metadata_url_on_the_internal_network_is_not_fetched_even_with_private_upstreams(
    tmp_path: Path,
) -> None:
    """An anonymous /authorize names its client by a URL Bastion fetches (a Client ID Metadata
    Document). BASTION_ALLOW_PRIVATE_UPSTREAMS (on with --demo, and here) is the admin's choice for
    the upstreams the admin registers, not for URLs strangers choose: it made Bastion GET any
    loopback or private URL for anyone. Such a URL is refused before any request, http or https."""
    async with internal() as inside, serve_public(f"sqlite+aiosqlite:///{tmp_path}/b.db") as gateway:
        assert gateway.bastion.settings.allow_private_upstreams
        await gateway.register(stdio_fixture("fx"))
        await gateway.create_server({"name": "vs", "upstreams": ["fx"], "visibility": "public"})
        async with httpx2.AsyncClient(timeout=30) as http:
            for client_id in (f"{inside.url}/internal/admin?do=something", f"{inside.url}/client.json"):
                answer = await http.get(authorize_url(gateway, {"client_id": client_id}, "vs", Pkce()))
                assert answer.status_code == 400 and answer.json()["error"] == "invalid_request", answer.text
                assert "location" not in answer.headers
    assert inside.hits == [], "Bastion fetched a client-chosen URL on the internal network"
    private = Outbound(Rules(allow_private=True, allowed=parse_networks([f"{INTERNAL}/32"])))
    await private.check(f"https://{INTERNAL}/client.json")  # the upstreams' rules allow it...
    with pytest.raises(AddressRefused):  # ...the rules a metadata document is fetched under do not
        await private.for_strangers().check(f"https://{INTERNAL}/client.json")
    await private.aclose()
