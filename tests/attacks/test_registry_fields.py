"""Attack class: an MCP Registry listing an entry whose text the cache cannot hold: a `version` longer
than its column (255), an `updatedAt` longer than 64, a `status` longer than 32, a NUL anywhere
(PostgreSQL stores none). The insert failed on PostgreSQL and the API answered 500; the background
refresh died for good. Such an answer is refused as any malformed registry answer is (a 400 naming
the source and the field), nothing is saved, a cached listing is kept, and the refresh task goes on."""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.core.registry_listing import RegistrySource
from tests.harness import Running, serve, serve_asgi, settings_for
from tests.upstreams.registry_server import OFFICIAL, UPDATED, load_documents

pytestmark = pytest.mark.anyio

DEAD_URL = "http://127.0.0.1:9/mcp"  # listed only, never reached


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("registry-fields")
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp}/b.db")) as running:
        yield running


class FakeRegistry:
    """A v0.1 list answer of the real-shaped documents, which a test may change (`change`) at will."""

    def __init__(self) -> None:
        self.change: Callable[[dict[str, Any]], None] = lambda page: None

    def page(self) -> dict[str, Any]:
        docs = load_documents(DEAD_URL)
        meta = {"status": "active", "publishedAt": UPDATED, "updatedAt": UPDATED, "isLatest": True}
        servers = [{"server": d, "_meta": {OFFICIAL: copy.deepcopy(meta)}} for d in docs if d["version"] != "1.0.0"]
        page = {"servers": servers, "metadata": {"count": len(servers)}}
        self.change(page)
        return page

    def app(self) -> Starlette:
        async def list_servers(request: Request) -> Response:
            return JSONResponse(self.page())

        return Starlette(routes=[Route("/v0.1/servers", list_servers)])


def _set(path: str, value: str) -> Callable[[dict[str, Any]], None]:
    """Set one field of the first entry: `server.<key>` or `meta.<key>`, `server.remotes.0.url`..."""

    def change(page: dict[str, Any]) -> None:
        first = page["servers"][0]
        where, *keys = path.split(".")
        node: Any = first["server"] if where == "server" else first["_meta"][OFFICIAL]
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[keys[-1]] = value

    return change


BAD = {
    "long-version": ("server.version", "1." + "0" * 300, "'version'"),
    "long-updated-at": ("meta.updatedAt", "2025-12-01T10:00:00Z" + "0" * 60, "'updatedAt'"),
    "long-status": ("meta.status", "active" * 6, "'status'"),
    "nul-version": ("server.version", "1.2\x00.3", "NUL"),
    "nul-description": ("server.description", "weather\x00", "NUL"),
    "nul-status": ("meta.status", "act\x00ive", "NUL"),
    "nul-updated-at": ("meta.updatedAt", "2025\x00", "NUL"),
    "nul-nested": ("server.repository.url", "https://example.com/\x00", "NUL"),
}


def _refused(response: Any, source: str, word: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    detail = response.json()["detail"]
    assert f"registry source {source!r}" in detail and word in detail, detail
    assert "\x00" not in detail


@pytest.mark.parametrize("case", list(BAD))
async def test_an_entry_the_cache_cannot_hold_is_refused_and_nothing_is_saved(case: str, gateway: Running) -> None:
    path, value, word = BAD[case]
    registry = FakeRegistry()
    registry.change = _set(path, value)
    async with serve_asgi(registry.app()) as url:
        refused = await gateway.api.post("/api/v1/registries", json={"name": f"evil-{case}", "url": url})
    _refused(refused, f"evil-{case}", word)
    assert (await gateway.api.get(f"/api/v1/registries/evil-{case}")).status_code == 404
    assert (await gateway.api.get("/readyz")).status_code == 200


@pytest.mark.parametrize("case", ["long-version", "nul-status"])
async def test_a_refresh_listing_such_an_entry_keeps_the_cached_listing(case: str, gateway: Running) -> None:
    path, value, word = BAD[case]
    registry = FakeRegistry()
    name = f"kept-{case}"
    async with serve_asgi(registry.app()) as url:
        added = await gateway.api.post("/api/v1/registries", json={"name": name, "url": url})
        assert added.status_code == 201, added.text
        registry.change = _set(path, value)
        refused = await gateway.api.post(f"/api/v1/registries/{name}/refresh", params={"full": "true"})
    _refused(refused, name, word)
    source = (await gateway.api.get(f"/api/v1/registries/{name}")).json()
    assert source["entries"] == added.json()["entries"] > 0 and word in source["error"]
    found = await gateway.api.get("/api/v1/registries/search", params={"q": "weather", "source": name})
    assert found.status_code == 200 and found.json()["items"], found.text
    assert (await gateway.api.get("/readyz")).status_code == 200


async def test_the_background_refresh_survives_a_source_failing_unexpectedly(
    gateway: Running, caplog: pytest.LogCaptureFixture
) -> None:
    """Any failure of one source (here the database dropping a connection) is logged; the others are
    still refreshed, and so is the failing one next round (the task runner never restarts the task)."""
    registries = gateway.bastion.registries
    assert registries is not None
    registry = FakeRegistry()
    async with serve_asgi(registry.app()) as url:
        for name in ("round-a", "round-b"):
            added = await gateway.api.post("/api/v1/registries", json={"name": name, "url": url})
            assert added.status_code == 201, added.text
        before = {s.name: s.refreshed_at for s in await registries.repo.list_sources()}
        save = registries.repo.update_source  # a refresh's save: conditional on where it read from

        async def failing(source: RegistrySource, *args: Any, **kwargs: Any) -> None:
            if source.name == "round-a":
                raise ConnectionResetError("connection reset by peer")
            await save(source, *args, **kwargs)

        registries.repo.update_source = failing  # type: ignore[method-assign]
        try:
            with caplog.at_level(logging.WARNING, logger="bastion.registry"):
                await registries.refresh_all()
        finally:
            del registries.repo.update_source
        after = {s.name: s.refreshed_at for s in await registries.repo.list_sources()}
        assert after["round-a"] == before["round-a"]
        assert after["round-b"] is not None and after["round-b"] > before["round-b"]  # type: ignore[operator]
        assert any("round-a" in r.getMessage() and "connection reset" in r.getMessage() for r in caplog.records)
        await registries.refresh_all()  # the next round refreshes it
        assert (await registries.source("round-a")).refreshed_at > before["round-a"]  # type: ignore[operator]
