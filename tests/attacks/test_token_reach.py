"""Attack class: a scoped token reading beyond its scope (issue 9, finding 15c). A `read` API token
for one virtual server sees in the REST catalog only that server and what it exposes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from tests.e2e.test_token_scopes import create_token
from tests.harness import Running, serve, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def scoped(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Running, str, str]]:
    tmp: Path = tmp_path_factory.mktemp("reach")
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp}/b.db")) as gateway:
        await gateway.register({**stdio_fixture("fx"), "visibility": "public"})
        await gateway.register({**stdio_fixture("other"), "visibility": "public"})
        await gateway.create_server({"name": "vs1", "tools": ["fx__add"], "visibility": "public"})
        await gateway.create_server({"name": "vs2", "upstreams": ["other"], "visibility": "public"})
        one = (await create_token(gateway, servers=["vs1"], permissions=["read"]))["token"]
        every = (await create_token(gateway, servers="*", permissions=["read"]))["token"]
        yield gateway, one, every


async def _get(gateway: Running, token: str, path: str) -> httpx2.Response:
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        return await http.get(path, headers={"authorization": f"Bearer {token}"})


async def test_a_token_for_one_server_lists_only_what_that_server_exposes(scoped: tuple[Running, str, str]) -> None:
    gateway, one, _ = scoped
    names = lambda r: sorted(i["name"] for i in r.json()["items"])  # noqa: E731
    assert names(await _get(gateway, one, "/api/v1/tools")) == ["fx__add"]
    assert names(await _get(gateway, one, "/api/v1/prompts")) == []
    assert names(await _get(gateway, one, "/api/v1/resources")) == []
    assert names(await _get(gateway, one, "/api/v1/servers")) == ["vs1"]
    assert names(await _get(gateway, one, "/api/v1/upstreams")) == ["fx"]


@pytest.mark.parametrize("path", ["/api/v1/tools/fx__echo", "/api/v1/tools/other__add", "/api/v1/servers/vs2", "/api/v1/upstreams/other"])
async def test_a_token_for_one_server_cannot_read_beyond_it(scoped: tuple[Running, str, str], path: str) -> None:
    gateway, one, _ = scoped
    response = await _get(gateway, one, path)
    assert response.status_code == 404, response.text


async def test_a_token_for_every_server_reads_the_whole_catalog(scoped: tuple[Running, str, str]) -> None:
    gateway, _, every = scoped
    assert len((await _get(gateway, every, "/api/v1/tools")).json()["items"]) > 1
    assert (await _get(gateway, every, "/api/v1/servers/vs2")).status_code == 200
