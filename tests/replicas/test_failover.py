"""A replica that dies takes only its own connections with it: upstream sessions to stateful
upstreams are per replica, so the next call on another replica is served at once (that replica
holds or opens its own session), and completed work is in the shared database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import HttpUpstream, http_fixture
from tests.replicas.cluster import replicas
from tests.replicas.test_replicas import known_everywhere

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@pytest.fixture(scope="module")
def stateful() -> Iterator[HttpUpstream]:
    """The fixture over the old SSE transport: a stateful upstream session per client."""
    with http_fixture("sse") as running:
        yield running


async def test_calls_go_on_through_the_other_replicas_after_one_is_killed(tmp_path: Path, stateful: HttpUpstream) -> None:
    async with replicas(3, tmp_path) as (r1, r2, r3):
        assert (await r1.api.post("/api/v1/upstreams", json=stateful.body("fx"))).status_code == 201
        assert (await r1.api.post("/api/v1/servers", json={"name": "vs", "upstreams": ["fx"]})).status_code == 201
        await known_everywhere((r2, r3), "vs")  # replicas hear of changes asynchronously (Redis, or polling)
        for replica in (r1, r2, r3):  # each opens (or already holds) its own upstream session
            reply = await replica.call_tool("vs", "fx__add", {"a": 1, "b": replica.port})
            assert reply["result"]["structuredContent"] == {"result": 1 + replica.port}, reply
        r1.kill()
        for replica in (r2, r3, r2):
            reply = await replica.call_tool("vs", "fx__echo", {"text": f"after {replica.port}"})
            assert reply["result"]["content"][0]["text"] == f"after {replica.port}", reply
        # What replica 1 saved before it died is there for the others.
        assert (await r2.api.get("/api/v1/servers/vs")).status_code == 200
        assert (await r3.api.get("/api/v1/upstreams/fx")).json()["status"] == "healthy"
