"""The SSRF guard through the REST API: an upstream URL that resolves to loopback or a private
network is refused (403, nothing saved) unless the admin allowed it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bastion.core.netguard import AddressRefused
from tests.harness import HttpUpstream, Running, http_fixture, serve, settings_for, stdio_fixture
from tests.rest.test_upstreams_api import assert_problem

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def upstream() -> Iterator[HttpUpstream]:
    with http_fixture() as running:
        yield running


@pytest.fixture
async def strict(tmp_path: Path) -> AsyncIterator[Running]:
    """Bastion on its production default: no private or loopback upstreams."""
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", allow_private_upstreams=False)) as running:
        yield running


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_loopback_upstream_is_refused_and_not_saved(strict: Running, upstream: HttpUpstream, host: str) -> None:
    body = {**upstream.body("local"), "url": upstream.url.replace("127.0.0.1", host)}
    problem = assert_problem(await strict.api.post("/api/v1/upstreams", json=body), AddressRefused.http_status)
    assert "BASTION_ALLOW_PRIVATE_UPSTREAMS" in problem["detail"]
    assert (await strict.api.get("/api/v1/upstreams/local")).status_code == 404


async def test_stdio_upstreams_are_not_network_addresses(strict: Running) -> None:
    await strict.register(stdio_fixture("fx"))


async def test_an_allowed_network_lets_its_addresses_through(tmp_path: Path, upstream: HttpUpstream) -> None:
    settings = settings_for(
        f"sqlite+aiosqlite:///{tmp_path}/b.db", allow_private_upstreams=False, upstream_allowed_networks=("127.0.0.0/8",)
    )
    async with serve(settings) as gateway:
        created = await gateway.register(upstream.body("local"))
        assert created["status"] == "healthy"


async def test_changing_a_url_to_a_refused_address_keeps_the_old_one(tmp_path: Path, upstream: HttpUpstream) -> None:
    settings = settings_for(
        f"sqlite+aiosqlite:///{tmp_path}/b.db", allow_private_upstreams=False, upstream_allowed_networks=("127.0.0.0/8",)
    )
    async with serve(settings) as gateway:
        await gateway.register(upstream.body("local"))
        response = await gateway.api.patch("/api/v1/upstreams/local", json={"url": "http://10.255.255.1:9/mcp"})
        assert_problem(response, AddressRefused.http_status)
        shown = (await gateway.api.get("/api/v1/upstreams/local")).json()
        assert shown["url"] == upstream.url and shown["status"] == "healthy"
