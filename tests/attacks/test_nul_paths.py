"""Attack class: a NUL in the URL path. No name Bastion stores can hold one, and PostgreSQL cannot
even compare one (`invalid byte sequence for encoding "UTF8": 0x00`): every route that looks a
path segment up used to answer 500 there. The request is refused before any route runs."""

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
