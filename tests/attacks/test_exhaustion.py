"""Attack class: unauthenticated (or cheap) resource exhaustion. A slow Client ID Metadata Document
is cut off at a total deadline and fetched from a small pool of its own, so it cannot hold the
connections upstream traffic needs; dynamic client registration is rate-limited per address, takes
small bodies only, and forgets clients nobody uses; calls held waiting for a client's input are
bounded per caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import anyio
import httpx2
import pytest
from mcp import MCPError
from mcp.types import InputRequiredResult
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from bastion.core.errors import TooManyRequests
from tests.attacks.network import public_upstream
from tests.auth.oauth_client import REDIRECT_URI, Pkce, authorize_url, register, serve_public
from tests.e2e.test_bridge import CALLBACKS, asking_url  # noqa: F401 - the module-scoped asking upstream
from tests.e2e.test_token_scopes import create_token
from tests.harness import Running, postgres_database, serve, serve_asgi, settings_for

pytestmark = pytest.mark.anyio


@dataclass
class Dribbler:
    url: str
    stop: anyio.Event


@pytest.fixture
async def dribbling() -> AsyncIterator[Dribbler]:
    """A metadata document server that sends one byte at a time, slowly, until stopped: every single
    read is quick, the whole fetch never ends."""
    stop = anyio.Event()

    async def document(_: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            while not stop.is_set():
                yield b" "
                with anyio.move_on_after(0.2):  # the attacker's pace, not a test synchronisation
                    await stop.wait()

        return StreamingResponse(body(), media_type="application/json")

    async with serve_asgi(Starlette(routes=[Route("/client.json", document)])) as url:
        yield Dribbler(f"{url}/client.json", stop)
        stop.set()


LOOPBACK_DOCUMENTS = {"oauth_client_metadata_allow_private": True}
"""The documents here are served on loopback: fetched only with this test-only setting."""


def cimd_authorize(gateway: Running, client_id: str) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "code_challenge": Pkce().challenge,
        "code_challenge_method": "S256",
        "resource": gateway.mcp_url("vs"),
    }
    return f"{gateway.base_url}/authorize?{urlencode(params)}"


async def test_a_slow_metadata_document_is_cut_off_at_a_total_deadline(tmp_path: Path, dribbling: Dribbler) -> None:
    async with serve_public(f"sqlite+aiosqlite:///{tmp_path}/b.db", outbound_untrusted_timeout=1.0, **LOOPBACK_DOCUMENTS) as gateway:
        async with httpx2.AsyncClient(timeout=60) as http:
            with anyio.fail_after(15):
                answer = await http.get(cimd_authorize(gateway, dribbling.url))
        dribbling.stop.set()
    assert answer.status_code == 400, answer.text


async def test_slow_metadata_documents_do_not_starve_upstream_traffic(tmp_path: Path, dribbling: Dribbler) -> None:
    # Every /authorize must reach the document fetch: not stopped by the per-address limit first.
    settings = {"outbound_untrusted_timeout": 60.0, "oauth_authorize_rate": "1000/minute", **LOOPBACK_DOCUMENTS}
    async with public_upstream() as url, serve_public(f"sqlite+aiosqlite:///{tmp_path}/b.db", **settings) as gateway:
        async with anyio.create_task_group() as tg, httpx2.AsyncClient(
            timeout=120, limits=httpx2.Limits(max_connections=None)
        ) as http:
            for _ in range(210):
                tg.start_soon(http.get, cimd_authorize(gateway, dribbling.url))
            with anyio.fail_after(20):  # needs the outbound connections the documents would hold
                await gateway.register({"name": "fx", "transport": "streamable-http", "url": url})
            tg.cancel_scope.cancel()
        dribbling.stop.set()


async def test_dynamic_registration_is_rate_limited_per_address(tmp_path: Path) -> None:
    async with serve_public(f"sqlite+aiosqlite:///{tmp_path}/b.db", oauth_registration_rate="3/hour") as gateway:
        for _ in range(3):
            await register(gateway)
        async with httpx2.AsyncClient(base_url=gateway.base_url) as http:
            refused = await http.post("/register", json={"redirect_uris": [REDIRECT_URI]})
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) > 0


async def pending_rows(gateway: Running) -> int:
    async with gateway.bastion.engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM oauth_pending"))).scalar() or 0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("state", "S" * 60_000),
        ("state", "S" * 1025),
        ("code_challenge", "c" * 129),
        ("resource", "https://x.example/" + "r" * 2048),
        ("redirect_uri", "http://127.0.0.1:9/" + "p" * 2048),
        ("scope", "mcp " * 300),
        ("client_id", "https://x.example/" + "c" * 2048),
    ],
)
async def test_authorize_parameters_have_bounds(tmp_path: Path, name: str, value: str) -> None:
    """Every /authorize keeps its parameters in the database until answered or expired: a 60 KB
    `state` was kept as it came. Past its bound a parameter is refused, and nothing is kept or
    sent to the redirect URI."""
    async with serve_public(f"sqlite+aiosqlite:///{tmp_path}/b.db") as gateway:
        await gateway.create_server({"name": "vs", "upstreams": [], "visibility": "public"})
        client = await register(gateway)
        url = authorize_url(gateway, client, "vs", Pkce())
        async with httpx2.AsyncClient(timeout=30) as http:
            refused = await http.get(url, params={name: value})
            kept = await http.get(authorize_url(gateway, client, "vs", Pkce(), state="s" * 1024))
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_request", refused.text
        assert name in refused.json()["error_description"] and "location" not in refused.headers
        assert kept.status_code == 302, kept.text
        assert await pending_rows(gateway) == 1


async def test_authorize_is_rate_limited_per_address(tmp_path: Path) -> None:
    async with serve_public(f"sqlite+aiosqlite:///{tmp_path}/b.db", oauth_authorize_rate="3/hour") as gateway:
        await gateway.create_server({"name": "vs", "upstreams": [], "visibility": "public"})
        client = await register(gateway)
        async with httpx2.AsyncClient(timeout=30) as http:
            for _ in range(3):
                assert (await http.get(authorize_url(gateway, client, "vs", Pkce()))).status_code == 302
            refused = await http.get(authorize_url(gateway, client, "vs", Pkce()))
            by_form = await http.post(f"{gateway.base_url}/authorize", data={"client_id": client["client_id"]})
        assert await pending_rows(gateway) == 3
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) > 0
    assert by_form.status_code == 429


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_one_clients_pending_requests_are_capped_oldest_first(tmp_path: Path, database: str) -> None:
    """However many addresses send them, one client_id keeps at most so many pending requests."""
    async with AsyncExitStack() as stack:
        url = f"sqlite+aiosqlite:///{tmp_path}/b.db"
        if database == "postgres":
            url = await stack.enter_async_context(postgres_database())
        gateway = await stack.enter_async_context(serve_public(url, oauth_pending_per_client=3))
        await gateway.create_server({"name": "vs", "upstreams": [], "visibility": "public"})
        client, other = await register(gateway), await register(gateway)
        async with httpx2.AsyncClient(timeout=30) as http:
            consent = []
            for _ in range(5):
                started = await http.get(authorize_url(gateway, client, "vs", Pkce()))
                consent.append(started.headers["location"])
            others = await http.get(authorize_url(gateway, other, "vs", Pkce()))
            assert others.status_code == 302
            pages = [(await http.get(page)).status_code for page in consent]
            assert (await http.get(others.headers["location"])).status_code == 200
        assert pages == [400, 400, 200, 200, 200]
        assert await pending_rows(gateway) == 4


async def test_a_large_registration_body_is_refused(tmp_path: Path) -> None:
    async with serve_public(f"sqlite+aiosqlite:///{tmp_path}/b.db") as gateway:
        body = {"redirect_uris": [REDIRECT_URI], "client_name": "x" * 200_000}
        async with httpx2.AsyncClient(base_url=gateway.base_url) as http:
            refused = await http.post("/register", json=body)
        assert refused.status_code == 413, refused.status_code
        async with gateway.bastion.engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM oauth_clients"))).scalar() == 0


async def test_registered_clients_that_nobody_uses_expire(tmp_path: Path) -> None:
    async with serve_public(f"sqlite+aiosqlite:///{tmp_path}/b.db") as gateway:
        await gateway.create_server({"name": "vs", "upstreams": [], "visibility": "public"})
        stale, fresh = await register(gateway), await register(gateway)
        async with gateway.bastion.engine.begin() as conn:
            await conn.execute(
                text("UPDATE oauth_clients SET created_at = :past WHERE client_id = :id"),
                {"past": datetime.now(UTC) - timedelta(days=30), "id": stale["client_id"]},
            )
        async with httpx2.AsyncClient(timeout=30) as http:
            kept = await http.get(authorize_url(gateway, fresh, "vs", Pkce()))  # any /authorize purges
            gone = await http.get(authorize_url(gateway, stale, "vs", Pkce()))
    assert kept.status_code == 302, kept.text
    assert gone.status_code == 400, gone.text


async def test_calls_held_for_input_are_bounded_per_caller(asking_url: str, tmp_path: Path) -> None:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", held_calls_per_caller=1)
    async with serve(settings) as gateway:
        await gateway.register({"name": "ask", "transport": "sse", "url": asking_url})
        await gateway.create_server({"name": "a", "upstreams": ["ask"], "visibility": "public"})
        other = (await create_token(gateway, servers="*"))["token"]
        # The callers declare elicitation: the upstream asks only callers that can answer.
        async with gateway.client("a", mode="2026-07-28", **CALLBACKS) as client:
            held = await client.session.call_tool("ask__ask_name", {}, allow_input_required=True)
            assert isinstance(held, InputRequiredResult)
            with pytest.raises(MCPError) as refused:
                await client.session.call_tool("ask__ask_name", {}, allow_input_required=True)
            async with gateway.client("a", mode="2026-07-28", token=other, **CALLBACKS) as someone_else:
                # Another caller is not refused for this one's held calls (the shared upstream session
                # cannot route a second question, so its call ends without one).
                try:
                    await someone_else.session.call_tool("ask__ask_name", {}, allow_input_required=True)
                except MCPError as exc:
                    assert exc.code != TooManyRequests.jsonrpc_code, exc.message
    assert refused.value.code == TooManyRequests.jsonrpc_code
    assert "waiting for input" in refused.value.message
