"""Attack class: a NUL character in what a caller sends. PostgreSQL can neither store nor compare
one in text (`invalid byte sequence for encoding "UTF8": 0x00`), so on PostgreSQL:
- a route that looked a path segment up answered 500 (`GET /api/v1/users/%00`): a path holding a
  NUL is now refused before any route runs;
- a JSON body with `\u0000` in a field bound for a text column answered 500 (a user's email, a
  token's name, a server's description, a sign-in): a REST write's body holding one is now a 400.
Tool arguments may hold one (they go to the upstream, never into a column), and still do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from tests.harness import TOKEN, Running, serve, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("nul-paths")
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp}/b.db")) as running:
        await running.register(stdio_fixture("fx"))
        await running.create_server({"name": "vs", "upstreams": ["fx"]})
        yield running


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/users/%00"),
        ("GET", "/api/v1/teams/a%00"),
        ("GET", "/api/v1/upstreams/%00"),
        ("DELETE", "/api/v1/upstreams/%00"),
        ("GET", "/api/v1/servers/%00"),
        ("PATCH", "/api/v1/servers/%00"),
        ("GET", "/api/v1/tokens/%00"),
        ("DELETE", "/api/v1/tokens/%00"),
        ("POST", "/api/v1/servers/vs/tools/fx__echo%00"),
        ("POST", "/servers/%00/mcp"),
        ("GET", "/admin/upstreams/%00"),
    ],
)
async def test_a_nul_in_the_path_is_a_400(gateway: Running, method: str, path: str) -> None:
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        response = await http.request(method, path, headers={"authorization": f"Bearer {TOKEN}"}, json={})
    assert response.status_code == 400, (path, response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "NUL" in response.json()["detail"]
    # The gateway still serves its routes afterwards.
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        assert (await http.get("/api/v1/servers/vs", headers={"authorization": f"Bearer {TOKEN}"})).status_code == 200


NUL = "a\u0000b"
WRITES = [
    ("POST", "/api/v1/users", {"email": "x\u0000@example.com", "password": "correct horse battery staple 1", "role": "viewer"}),
    ("POST", "/api/v1/tokens", {"name": NUL, "servers": ["vs"]}),
    ("POST", "/api/v1/servers", {"name": "s2", "description": NUL, "upstreams": ["fx"]}),
    ("PATCH", "/api/v1/servers/vs", {"description": NUL}),
    ("POST", "/api/v1/auth/login", {"email": "a\u0000@example.com", "password": "whatever it is"}),
    ("POST", "/api/v1/upstreams", {"name": "u2", "transport": "stdio", "command": "x", "env": {"K": NUL}}),
    # Nested (a policy is stored as JSON text, where it did fit: refused all the same).
    ("PATCH", "/api/v1/servers/vs", {"policy": {"default": "allow", "rules": [{"effect": "deny", "tools": [NUL]}]}}),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[f"{m} {p} {i}" for i, (m, p, _) in enumerate(WRITES)])
async def test_a_nul_in_a_rest_body_is_a_400(gateway: Running, method: str, path: str, body: dict[str, object]) -> None:
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        response = await http.request(method, path, headers={"authorization": f"Bearer {TOKEN}"}, json=body)
        assert response.status_code == 400, (path, response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "NUL" in response.json()["detail"]
        served = await http.get("/api/v1/servers/vs", headers={"authorization": f"Bearer {TOKEN}"})
    assert served.status_code == 200 and "\u0000" not in served.text


async def test_an_escaped_backslash_before_u0000_is_not_a_nul(gateway: Running) -> None:
    # The JSON text `"a\\u0000b"` is a, a backslash, then u0000b: no NUL.
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        response = await http.patch(
            "/api/v1/servers/vs",
            content=b'{"description": "a\\\\u0000b"}',
            headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
        )
    assert response.status_code == 200, response.text
    assert response.json()["description"] == "a\\u0000b"


async def test_tool_arguments_may_hold_a_nul(gateway: Running) -> None:
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        response = await http.post(
            "/api/v1/servers/vs/tools/fx__echo", headers={"authorization": f"Bearer {TOKEN}"}, json={"text": NUL}
        )
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == NUL
